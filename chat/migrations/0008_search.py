"""The chat search index (``chat.search``): tables and triggers, then every message stored
so far indexed in batches, then (PostgreSQL) the indexes.

Not atomic: each batch commits, so a migration stopped part-way (or a very large table)
goes on where it was when ``migrate`` runs again; messages written meanwhile are indexed
by the triggers, which exist before the first batch.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    from chat.search import index

    index.install()
    index.backfill()
    index.finish()


def backwards(apps, schema_editor):
    from chat.search import index

    index.uninstall()


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("chat", "0007_usage")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
