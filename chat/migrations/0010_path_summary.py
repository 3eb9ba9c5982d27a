from django.db import migrations, models


def point_at_summaries(apps, schema_editor):
    """Name each chat's newest summary on its active path (what ``chat.storage.tree`` keeps)."""
    from chat.storage import paths

    ChatSession = apps.get_model("chat", "ChatSession")
    Branch = apps.get_model("chat", "Branch")
    Summary = apps.get_model("chat", "Summary")
    for session in ChatSession.objects.filter(summaries__isnull=False).distinct():
        segments = paths.ROOT
        if session.active_branch:
            data = Branch.objects.filter(session=session, number=session.active_branch).values_list("segments", flat=True).first()
            segments = paths.from_json(data) if data is not None else ()
        ranges = paths.after_sequence(segments, 0, upto=session.last_sequence, field="last_sequence")
        newest = Summary.objects.filter(ranges, session=session).order_by("-last_sequence").values_list("id", flat=True).first()
        ChatSession.objects.filter(id=session.id).update(path_summary=newest)


class Migration(migrations.Migration):

    dependencies = [
        ('chat', '0009_compaction'),
    ]

    operations = [
        migrations.AddField(
            model_name='chatsession',
            name='path_summary',
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.RunPython(point_at_summaries, migrations.RunPython.noop),
    ]
