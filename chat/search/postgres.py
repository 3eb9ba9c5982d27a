"""The search index on PostgreSQL: a table of ``tsvector``s kept by triggers, and the search.

``chat_message_search`` holds one row per message that has searchable text: its owner, its
time and its ``tsvector``. Triggers on ``chat_message`` write it in the same statement as
the message, whatever wrote the message (the turn's INSERT, a reply's UPDATE, a fork's
bulk copy, the admin): an INSERT indexes each new row (a row trigger: a tenth of a
millisecond for a turn's two messages, where a statement trigger's transition table cost
a quarter), an UPDATE of ``content`` re-indexes that row, a DELETE (one statement trigger,
so a chat's deletion is one join) or TRUNCATE removes the rows. A reply being written is
rewritten once a second while it streams: it is indexed when it finishes, or, left
unfinished (stopped, failed, its process gone), when its run ends (a trigger on the chat's
state), not at every rewrite of its growing text (a 15,000-character reply cost PostgreSQL
1.5 ms a rewrite). Titles are matched on the chats' table (an
expression index on ``chat_search_vector(title)`` for words few titles hold).

The text search configuration lives in the database, in four small SQL functions created
by ``install`` from ``SEARCH_CONFIG``: indexing, queries and snippets all go through them,
so they cannot disagree, and changing the setting takes effect with ``rebuild_search_index``.

Indexes: GIN on (owner, document) (btree_gin), so a search reads only the user's postings;
and (owner, created_at), so a common word is answered by walking the user's newest
messages until enough match. The planner chooses between the two per query, from the
word's frequency in the statistics, which is why the search statement is never prepared
(a generic plan would pick one path for every word).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import connection, transaction

from chat.search import document
from chat.search.document import START, STOP
from chat.search.query import SearchQuery, tsquery

log = logging.getLogger(__name__)

TABLE = "chat_message_search"


def _names() -> dict[str, str]:
    from chat.models import ChatSession, Message

    return {
        "message": Message._meta.db_table,
        "session": ChatSession._meta.db_table,
        "index": TABLE,
        # The user id's column type (integer for Django's User): a parameter of another
        # integer type could not use the GIN indexes (btree_gin compares within one type).
        "owner": ChatSession._meta.get_field("owner").db_type(connection),
    }


def _functions_sql(config: str) -> str:
    # ``config`` is checked by settings (an identifier); it is also passed through quote_literal.
    return f"""
CREATE OR REPLACE FUNCTION chat_search_document(content jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ {document.POSTGRES} $$;
CREATE OR REPLACE FUNCTION chat_search_vector(body text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT to_tsvector({config}::regconfig, body) $$;
CREATE OR REPLACE FUNCTION chat_search_tsquery(expression text) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT to_tsquery({config}::regconfig, expression) $$;
CREATE OR REPLACE FUNCTION chat_search_headline(body text, query tsquery, options text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT ts_headline({config}::regconfig, body, query, options) $$;
"""


_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS {index} (
    message_id uuid PRIMARY KEY,
    owner_id {owner} NOT NULL,
    created_at timestamptz NOT NULL,
    document tsvector NOT NULL
);
"""

_TRIGGERS_SQL = """
CREATE OR REPLACE FUNCTION chat_message_search_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    vector tsvector := chat_search_vector(chat_search_document(NEW.content));
BEGIN
    IF length(vector) > 0 THEN
        INSERT INTO {index} (message_id, owner_id, created_at, document)
        SELECT NEW.id, s.owner_id, NEW.created_at, vector FROM {session} s WHERE s.id = NEW.session_id;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION chat_message_search_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    vector tsvector;
BEGIN
    IF NOT NEW.finished AND EXISTS (SELECT 1 FROM {session} s WHERE s.id = NEW.session_id AND s.state = 'running') THEN
        -- A reply being written (rewritten once a second as it streams): indexed when its
        -- run ends (chat_session_search_run_ended), not at every rewrite of its growing text.
        RETURN NULL;
    END IF;
    vector := chat_search_vector(chat_search_document(NEW.content));
    IF length(vector) = 0 THEN
        DELETE FROM {index} WHERE message_id = NEW.id;
    ELSE
        INSERT INTO {index} (message_id, owner_id, created_at, document)
        SELECT NEW.id, s.owner_id, NEW.created_at, vector FROM {session} s WHERE s.id = NEW.session_id
        ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION chat_session_search_run_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The reply a run left unfinished (cancelled, failed, or its process died) is the
    -- newest message: indexed as it was kept. A finished one was indexed when it finished.
    INSERT INTO {index} (message_id, owner_id, created_at, document)
    SELECT m.id, NEW.owner_id, m.created_at, v.vector
    FROM {message} m, LATERAL (SELECT chat_search_vector(chat_search_document(m.content)) AS vector) v
    WHERE m.session_id = NEW.id AND m.sequence = NEW.last_sequence AND NOT m.finished AND length(v.vector) > 0
    ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION chat_message_search_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {index} x USING deleted d WHERE x.message_id = d.id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION chat_message_search_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {index};
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS chat_message_search_insert ON {message};
CREATE TRIGGER chat_message_search_insert AFTER INSERT ON {message}
    FOR EACH ROW EXECUTE FUNCTION chat_message_search_inserted();
DROP TRIGGER IF EXISTS chat_message_search_update ON {message};
CREATE TRIGGER chat_message_search_update AFTER UPDATE OF content ON {message}
    FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content) EXECUTE FUNCTION chat_message_search_updated();
DROP TRIGGER IF EXISTS chat_message_search_delete ON {message};
CREATE TRIGGER chat_message_search_delete AFTER DELETE ON {message}
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION chat_message_search_deleted();
DROP TRIGGER IF EXISTS chat_message_search_truncate ON {message};
CREATE TRIGGER chat_message_search_truncate AFTER TRUNCATE ON {message}
    FOR EACH STATEMENT EXECUTE FUNCTION chat_message_search_truncated();
DROP TRIGGER IF EXISTS chat_session_search_run_end ON {session};
CREATE TRIGGER chat_session_search_run_end AFTER UPDATE OF state ON {session}
    FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running') EXECUTE FUNCTION chat_session_search_run_ended();
"""

_DROP_SQL = """
DROP TRIGGER IF EXISTS chat_message_search_insert ON {message};
DROP TRIGGER IF EXISTS chat_message_search_update ON {message};
DROP TRIGGER IF EXISTS chat_message_search_delete ON {message};
DROP TRIGGER IF EXISTS chat_message_search_truncate ON {message};
DROP TRIGGER IF EXISTS chat_session_search_run_end ON {session};
DROP FUNCTION IF EXISTS chat_message_search_inserted(), chat_message_search_updated(),
    chat_message_search_deleted(), chat_message_search_truncated(), chat_session_search_run_ended();
DROP TABLE IF EXISTS {index};
DROP INDEX IF EXISTS chat_session_search_title;
DROP FUNCTION IF EXISTS chat_search_document(jsonb), chat_search_vector(text), chat_search_tsquery(text),
    chat_search_query(text), chat_search_headline(text, tsquery, text);
"""


def _execute(sql: str, params: Any = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _literal(value: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT quote_literal(%s)", [value])
        return cursor.fetchone()[0]


def install(config: str) -> None:
    """Create (or replace) the table, functions and triggers; safe to repeat. Indexes come
    with ``create_indexes``, after a bulk backfill (building them then is far cheaper)."""
    with transaction.atomic():
        _execute(_functions_sql(_literal(config)))
        _execute(_TABLE_SQL.format(**_names()))
        _execute(_TRIGGERS_SQL.format(**_names()))


def upgrade() -> None:
    """Create the functions and triggers again as this code defines them, with the text
    search configuration the index was built with (a migration that changes them; nothing
    if the index is not installed)."""
    installed = installed_config()
    if installed is not None:
        install(installed)


def create_indexes() -> None:
    names = _names()
    try:
        # btree_gin lets one GIN index hold the owner beside the words. It is a trusted
        # extension (any database owner may create it); without it the index holds the
        # words only and a search filters other users' matches out.
        with transaction.atomic():
            _execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
        owner = "owner_id, "
    except Exception as exc:  # noqa: BLE001 - any refusal: fall back, and say so
        log.warning("btree_gin is not available (%s): the search index holds words only", exc)
        owner = ""
    wanted = {
        "chat_message_search_terms": f"ON {names['index']} USING gin ({owner}document)",
        "chat_message_search_recent": f"ON {names['index']} (owner_id, created_at)",
        # Titles by their words, whoever's: the planner takes it for a word few titles
        # hold, and reads the user's chats (the owner index) for a common one, or when the
        # user has few. Built with chat_search_vector as it is: ``reindex_titles`` after
        # the configuration changed.
        "chat_session_search_title": f"ON {names['session']} USING gin (chat_search_vector(title))",
    }
    for name, definition in wanted.items():
        if not _exists(name):
            _execute(f"CREATE INDEX {name} {definition}")


def installed_config() -> str | None:
    """The text search configuration the index was built with (None: not installed)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'chat_search_vector'")
        row = cursor.fetchone()
    found = re.search(r"to_tsvector\('([^']+)'", row[0]) if row else None
    return found.group(1) if found else None


def reindex_titles() -> None:
    # Deferred constraint checks of the caller's transaction, if any, run first: an index
    # cannot be rebuilt on a table with trigger events pending.
    _execute("SET CONSTRAINTS ALL IMMEDIATE")
    _execute("REINDEX INDEX chat_session_search_title")


def uninstall() -> None:
    _execute(_DROP_SQL.format(**_names()))


def installed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'chat_message_search_%%' AND tgrelid = to_regclass(%s)",
            [_names()["message"]],
        )
        return cursor.fetchone()[0] == 4 and _exists(TABLE)


def _exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return cursor.fetchone()[0]


def index_batch(after: Any, size: int, *, only_missing: bool) -> Any:
    """Index up to ``size`` messages with an id above ``after`` (in id order); the last id
    read and how many were read, or None when there were none. ``only_missing`` skips messages indexed already
    (a backfill resumed); otherwise each is indexed again (a rebuild) and the entries of
    messages with nothing searchable go."""
    names = _names()
    missing = f"AND NOT EXISTS (SELECT 1 FROM {names['index']} x WHERE x.message_id = m.id)" if only_missing else ""
    sql = f"""
        WITH batch AS (
            SELECT id, session_id, created_at, content FROM {names['message']}
            WHERE id > %s ORDER BY id LIMIT %s
        ), documents AS (
            SELECT m.id, s.owner_id, m.created_at, chat_search_vector(chat_search_document(m.content)) AS vector
            FROM batch m JOIN {names['session']} s ON s.id = m.session_id
            WHERE true {missing}
        ), emptied AS (
            DELETE FROM {names['index']} x USING documents d WHERE x.message_id = d.id AND length(d.vector) = 0
        ), written AS (
            INSERT INTO {names['index']} (message_id, owner_id, created_at, document)
            SELECT id, owner_id, created_at, vector FROM documents WHERE length(vector) > 0
            ON CONFLICT (message_id) DO UPDATE SET document = EXCLUDED.document
        )
        SELECT max(id::text), count(*) FROM batch
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [after or "00000000-0000-0000-0000-000000000000", size])
        last, count = cursor.fetchone()
        return (last, count) if count else None


def remove_orphans() -> int:
    """Entries whose message is gone (written while the triggers were missing)."""
    names = _names()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {names['index']} x WHERE NOT EXISTS (SELECT 1 FROM {names['message']} m WHERE m.id = x.message_id)"
        )
        return cursor.rowcount


# --- the search ------------------------------------------------------------------------------

_SNIPPET = f'StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=12, ShortWord=2, MaxFragments=2, FragmentDelimiter=" … "'
_TITLE = f"StartSel={START}, StopSel={STOP}, HighlightAll=true"


def search(owner_id: int, query: SearchQuery, *, window: int, after: tuple[float, str] | None, limit: int, half_life: float) -> list[dict[str, Any]]:
    """The best ``limit`` hits after the cursor ``after`` (score, key), best first (see
    ``statement``)."""
    sql, params = statement(owner_id, query, window=window, after=after, limit=limit, half_life=half_life)
    with connection.cursor() as cursor:
        # Not prepared: planned with this query's words (see the module's docstring).
        with connection.wrap_database_errors:
            cursor.cursor.execute(sql, params, prepare=False)
            rows = cursor.cursor.fetchall()
    return [
        {
            "key": str(r[0]),
            "is_title": r[1],
            "score": float(r[2]),
            "chat_id": r[3],
            "chat_title": r[4],
            "message": None
            if r[1]
            else {"id": r[5], "branch": r[6], "sequence": r[7], "role": r[8], "created_at": r[9]},
            "active_branch": r[10],
            "last_sequence": r[11],
            "branch_count": r[12],
            "headline": r[13] or "",
        }
        for r in rows
    ]


def statement(owner_id: int, query: SearchQuery, *, window: int, after: tuple[float, str] | None, limit: int, half_life: float) -> tuple[str, dict[str, Any]]:
    """The search statement and its parameters: the best ``limit`` hits after the cursor
    ``after`` (score, key), best first.

    The candidates are the user's newest ``window`` matching messages and chats (by the
    indexes above); each is scored ln(relevance) + age / half-life-in-e-folds, which
    orders them exactly as relevance × 2^(-age / half_life) would, but is the same number
    whenever it is computed, so a cursor holds.
    """
    names = _names()
    params: dict[str, Any] = {
        "q": tsquery(query),
        "owner": owner_id,
        "window": window,
        "tau": half_life / 0.6931471805599453,
        "limit": limit,
        "snippet": _SNIPPET,
        "title": _TITLE,
        "marks": START + STOP,
        "score": after[0] if after else None,
        "key": after[1] if after else None,
    }
    sql = f"""
        WITH messages AS (
            SELECT x.message_id AS key, false AS is_title, x.created_at AS at, x.document
            FROM {names['index']} x
            WHERE x.owner_id = %(owner)s::{names['owner']} AND x.document @@ chat_search_tsquery(%(q)s)
            ORDER BY x.created_at DESC LIMIT %(window)s
        ), titles AS (
            SELECT c.id AS key, true AS is_title, c.updated_at AS at, chat_search_vector(c.title) AS document
            FROM {names['session']} c
            WHERE c.owner_id = %(owner)s::{names['owner']} AND chat_search_vector(c.title) @@ chat_search_tsquery(%(q)s)
            ORDER BY c.updated_at DESC LIMIT %(window)s
        ), scored AS (
            SELECT key, is_title,
                   ln(ts_rank(document, chat_search_tsquery(%(q)s))::float8 + 1e-6) + extract(epoch FROM at)::float8 / %(tau)s::float8 AS score
            FROM (SELECT * FROM messages UNION ALL SELECT * FROM titles) candidates
        ), page AS (
            SELECT key, is_title, score FROM scored
            WHERE %(score)s::float8 IS NULL OR (score, key) < (%(score)s::float8, %(key)s::uuid)
            ORDER BY score DESC, key DESC LIMIT %(limit)s
        )
        SELECT p.key, p.is_title, p.score, c.id, c.title, m.id, m.branch, m.sequence, m.role, m.created_at,
               c.active_branch, c.last_sequence, c.branch_count,
               chat_search_headline(
                   translate(CASE WHEN p.is_title THEN c.title ELSE chat_search_document(m.content) END, %(marks)s, ''),
                   chat_search_tsquery(%(q)s),
                   CASE WHEN p.is_title THEN %(title)s ELSE %(snippet)s END
               )
        FROM page p
        LEFT JOIN {names['message']} m ON NOT p.is_title AND m.id = p.key
        JOIN {names['session']} c ON c.id = COALESCE(m.session_id, p.key) AND c.owner_id = %(owner)s::{names['owner']}
        ORDER BY p.score DESC, p.key DESC
    """
    return sql, params
