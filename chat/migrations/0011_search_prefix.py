"""Search: the last word typed also matches as the start of a word. On PostgreSQL the query
is now written out as a ``to_tsquery`` expression (``chat.search.query.tsquery``) and read
by a new function, ``chat_search_tsquery``, created here with the text search
configuration the index was built with (a ``SEARCH_CONFIG`` changed since then takes
effect with ``rebuild_search_index``, as before). SQLite needs nothing: FTS5 reads prefixes
as they are.

The old function, ``chat_search_query``, is left for code of the previous release (a
rollback); uninstalling the index drops it.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from chat.search import postgres

    postgres.upgrade()


class Migration(migrations.Migration):
    dependencies = [("chat", "0010_path_summary")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
