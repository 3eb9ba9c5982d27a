"""Search across a user's chats: every message's words and every chat's title, ranked.

The index lives in the chat database itself and is written by the database, in the same
statement as the message (triggers): PostgreSQL ``tsvector``s (``postgres.py``), SQLite
FTS5 in the embedded mode (``sqlite.py``). What of a message is searched is one rule
(``document.py``); the query syntax is ``websearch_to_tsquery``'s, the last word also a prefix (``query.py``); ranking,
cursors and snippets are ``results.py``; installing, backfilling and rebuilding the index
are ``index.py`` (the migration, ``manage.py rebuild_search_index`` and ``post_migrate``).
"""
