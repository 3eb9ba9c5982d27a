"""Search: a reply being written is indexed when it finishes, or when its run ends if it was
left unfinished, not at each rewrite of its growing text while it streams (once a second).
The message update trigger skips unfinished replies of a running chat; a new trigger on the
chat's state indexes the reply a run leaves unfinished (``chat.search``).

PostgreSQL: the functions and triggers are created again with the text search
configuration the index was built with. SQLite: the update trigger is replaced and the new
one added. Backwards leaves them: the previous release's code works with them.
"""

from django.conf import settings
from django.db import migrations


def forwards(apps, schema_editor):
    from chat.search import postgres, sqlite

    if schema_editor.connection.vendor == "postgresql":
        postgres.upgrade()
    elif sqlite.present():
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS chat_message_search_update")
        sqlite.install(settings.SEARCH_CONFIG)  # the tables exist: only the triggers are made


class Migration(migrations.Migration):
    dependencies = [("chat", "0011_search_prefix")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
