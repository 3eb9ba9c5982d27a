"""The search index in the embedded mode: SQLite FTS5 tables kept by triggers, and the search.

``chat_message_search`` (FTS5) holds each message's searchable text with its id, owner and
time; ``chat_session_search`` each chat's title. Their rowids are the rowids of the rows
they index, and triggers write them in the statement that writes the message or the chat.
A rowid is not an id SQLite promises to keep (a table rebuilt by a migration renumbers
it), so every read also matches the stored id, and ``ensure`` (after each ``migrate``)
rebuilds both tables when their triggers went with a rebuilt table.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.utils import OperationalError

from chat.search import document
from chat.search.document import START, STOP
from chat.search.query import SearchQuery, fts5

MESSAGES, TITLES = "chat_message_search", "chat_session_search"
_TRIGGERS = (
    "chat_message_search_insert",
    "chat_message_search_update",
    "chat_message_search_delete",
    "chat_session_search_insert",
    "chat_session_search_update",
    "chat_session_search_delete",
    "chat_session_search_run_end",
)


def _names() -> dict[str, str]:
    from chat.models import ChatSession, Message

    return {"message": Message._meta.db_table, "session": ChatSession._meta.db_table}


def tokenizer(config: str) -> str:
    # unicode61 without removing diacritics: words match as written, like PostgreSQL's
    # ``simple``; ``english`` stems like PostgreSQL's (Porter).
    base = "unicode61 remove_diacritics 0"
    return f"porter {base}" if config == "english" else base


def _title(row: str) -> str:
    return f"replace(replace({row}.title, char({ord(START)}), ''), char({ord(STOP)}), '')"


def _message_row(new: str) -> str:
    names = _names()
    return f"""
        INSERT INTO {MESSAGES} (rowid, body, message_id, owner_id, created_at)
        SELECT {new}.rowid, d.body, {new}.id, s.owner_id, {new}.created_at
        FROM (SELECT {document.sqlite(f'{new}.content')} AS body) d JOIN {names['session']} s ON s.id = {new}.session_id
        WHERE d.body <> '';"""


def _left_unfinished(session: str) -> str:
    """The reply a run left unfinished, as the PostgreSQL trigger finds it: the chat's
    newest message."""
    names = _names()
    return f"SELECT rowid FROM {names['message']} WHERE session_id = {session}.id AND sequence = {session}.last_sequence AND NOT finished"


def _run_ended() -> str:
    names = _names()
    return f"""
        DELETE FROM {MESSAGES} WHERE rowid IN ({_left_unfinished('new')});
        INSERT INTO {MESSAGES} (rowid, body, message_id, owner_id, created_at)
        SELECT m.rowid, d.body, m.id, new.owner_id, m.created_at
        FROM {names['message']} m JOIN (SELECT rowid AS rid, {document.sqlite('content')} AS body FROM {names['message']}
            WHERE rowid IN ({_left_unfinished('new')})) d ON d.rid = m.rowid
        WHERE d.body <> '';"""


def _schema(config: str) -> list[str]:
    names = _names()
    tokenize = tokenizer(config)
    return [
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {MESSAGES} USING fts5("
        f"body, message_id UNINDEXED, owner_id UNINDEXED, created_at UNINDEXED, tokenize = '{tokenize}')",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TITLES} USING fts5("
        f"title, session_id UNINDEXED, owner_id UNINDEXED, tokenize = '{tokenize}')",
        f"CREATE TRIGGER IF NOT EXISTS chat_message_search_insert AFTER INSERT ON {names['message']} BEGIN"
        f"{_message_row('new')} END",
        # A reply being written is indexed when it finishes or its run ends (see postgres.py).
        f"CREATE TRIGGER IF NOT EXISTS chat_message_search_update AFTER UPDATE OF content ON {names['message']}"
        f" WHEN old.content IS NOT new.content AND (new.finished OR NOT EXISTS"
        f" (SELECT 1 FROM {names['session']} s WHERE s.id = new.session_id AND s.state = 'running'))"
        f" BEGIN DELETE FROM {MESSAGES} WHERE rowid = old.rowid;{_message_row('new')} END",
        f"CREATE TRIGGER IF NOT EXISTS chat_session_search_run_end AFTER UPDATE OF state ON {names['session']}"
        f" WHEN old.state = 'running' AND new.state <> 'running' BEGIN{_run_ended()} END",
        f"CREATE TRIGGER IF NOT EXISTS chat_message_search_delete AFTER DELETE ON {names['message']} BEGIN"
        f" DELETE FROM {MESSAGES} WHERE rowid = old.rowid; END",
        f"CREATE TRIGGER IF NOT EXISTS chat_session_search_insert AFTER INSERT ON {names['session']}"
        f" WHEN new.title <> '' BEGIN INSERT INTO {TITLES} (rowid, title, session_id, owner_id)"
        f" VALUES (new.rowid, {_title('new')}, new.id, new.owner_id); END",
        f"CREATE TRIGGER IF NOT EXISTS chat_session_search_update AFTER UPDATE OF title ON {names['session']}"
        f" WHEN old.title IS NOT new.title BEGIN DELETE FROM {TITLES} WHERE rowid = old.rowid;"
        f" INSERT INTO {TITLES} (rowid, title, session_id, owner_id)"
        f" SELECT new.rowid, {_title('new')}, new.id, new.owner_id WHERE new.title <> ''; END",
        f"CREATE TRIGGER IF NOT EXISTS chat_session_search_delete AFTER DELETE ON {names['session']} BEGIN"
        f" DELETE FROM {TITLES} WHERE rowid = old.rowid; END",
    ]


def _execute(sql: str, params: Any = None) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def install(config: str) -> None:
    with transaction.atomic():
        for statement in _schema(config):
            _execute(statement)


def uninstall() -> None:
    with transaction.atomic():
        for trigger in _TRIGGERS:
            _execute(f"DROP TRIGGER IF EXISTS {trigger}")
        _execute(f"DROP TABLE IF EXISTS {MESSAGES}")
        _execute(f"DROP TABLE IF EXISTS {TITLES}")


def installed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM sqlite_master WHERE (type = 'trigger' AND name IN ({', '.join(['%s'] * len(_TRIGGERS))}))"
            " OR (type = 'table' AND name IN (%s, %s))",
            [*_TRIGGERS, MESSAGES, TITLES],
        )
        return cursor.fetchone()[0] == len(_TRIGGERS) + 2


def present() -> bool:
    """Whether the index tables exist (the search migration is applied)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = %s", [MESSAGES])
        return cursor.fetchone()[0] > 0


def index_batch(after: Any, size: int, *, only_missing: bool) -> Any:
    """As ``chat.search.postgres.index_batch``, by rowid; titles go with the first batch."""
    names = _names()
    after = after or 0
    with transaction.atomic():
        if not after:
            _execute(
                f"INSERT INTO {TITLES} (rowid, title, session_id, owner_id) SELECT c.rowid, {_title('c')}, c.id, c.owner_id"
                f" FROM {names['session']} c WHERE c.title <> ''"
                f" AND NOT EXISTS (SELECT 1 FROM {TITLES} t WHERE t.rowid = c.rowid AND t.session_id = c.id)"
            )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT max(rowid), count(*) FROM (SELECT rowid FROM {names['message']} WHERE rowid > %s ORDER BY rowid LIMIT %s)", [after, size])
            last, count = cursor.fetchone()
        if not count:
            return None
        done = f"EXISTS (SELECT 1 FROM {MESSAGES} x WHERE x.rowid = m.rowid AND x.message_id = m.id)"
        if not only_missing:
            _execute(f"DELETE FROM {MESSAGES} WHERE rowid > %s AND rowid <= %s", [after, last])
        _execute(
            f"INSERT INTO {MESSAGES} (rowid, body, message_id, owner_id, created_at)"
            f" SELECT rid, body, id, owner_id, created_at FROM (SELECT m.rowid AS rid, {document.sqlite('m.content')} AS body,"
            f" m.id, s.owner_id, m.created_at FROM {names['message']} m JOIN {names['session']} s ON s.id = m.session_id"
            f" WHERE m.rowid > %s AND m.rowid <= %s AND NOT {done}) WHERE body <> ''",
            [after, last],
        )
    return last, count


def remove_orphans() -> int:
    names = _names()
    with transaction.atomic():
        gone = _execute(
            f"DELETE FROM {MESSAGES} WHERE rowid NOT IN (SELECT x.rowid FROM {MESSAGES} x"
            f" JOIN {names['message']} m ON m.rowid = x.rowid AND m.id = x.message_id)"
        )
        gone += _execute(
            f"DELETE FROM {TITLES} WHERE rowid NOT IN (SELECT t.rowid FROM {TITLES} t"
            f" JOIN {names['session']} c ON c.rowid = t.rowid AND c.id = t.session_id)"
        )
    return gone


def create_indexes() -> None:
    """FTS5 tables are their own index."""


# --- the search ------------------------------------------------------------------------------

def search(owner_id: int, query: SearchQuery, *, window: int, after: tuple[float, str] | None, limit: int, half_life: float) -> list[dict[str, Any]]:
    """As ``chat.search.postgres.search``: relevance is FTS5's bm25 (negated: higher is better)."""
    names = _names()
    expression = fts5(query)
    tau = half_life / 0.6931471805599453
    cursor_clause = "AND (score < %s OR (score = %s AND key < %s))" if after else ""
    sql = f"""
        WITH messages AS (
            SELECT x.message_id AS key, 0 AS is_title, x.rowid AS rid, x.created_at AS at, -bm25({MESSAGES}) AS relevance
            FROM {MESSAGES} x WHERE {MESSAGES} MATCH %s AND x.owner_id = %s
            ORDER BY x.created_at DESC LIMIT %s
        ), titles AS (
            SELECT t.session_id AS key, 1 AS is_title, t.rowid AS rid, c.updated_at AS at, -bm25({TITLES}) AS relevance
            FROM {TITLES} t JOIN {names['session']} c ON c.rowid = t.rowid AND c.id = t.session_id
            WHERE {TITLES} MATCH %s AND t.owner_id = %s
            ORDER BY c.updated_at DESC LIMIT %s
        ), scored AS (
            SELECT key, is_title, rid, ln(max(relevance, 0) + 1e-6) + (julianday(at) - 2440587.5) * 86400.0 / %s AS score
            FROM (SELECT * FROM messages UNION ALL SELECT * FROM titles)
        )
        SELECT key, is_title, rid, score FROM scored WHERE 1 {cursor_clause}
        ORDER BY score DESC, key DESC LIMIT %s
    """
    params: list[Any] = [expression, owner_id, window, expression, owner_id, window, tau]
    if after:
        params += [after[0], after[0], after[1].replace("-", "")]
    params.append(limit)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            page = cursor.fetchall()
    except OperationalError as exc:
        if "fts5" in str(exc):  # an expression FTS5 still refuses: nothing found, never a 500
            return []
        raise
    if not page:
        return []
    return _details(owner_id, expression, page)


def _details(owner_id: int, expression: str, page: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The chats, messages and snippets of one page of hits."""
    names = _names()
    message_rows = [r[2] for r in page if not r[1]]
    title_rows = [r[2] for r in page if r[1]]
    snippets: dict[tuple[int, int], str] = {}
    messages: dict[str, tuple[Any, ...]] = {}
    sessions: dict[str, tuple[Any, ...]] = {}
    with connection.cursor() as cursor:
        if message_rows:
            marks = ", ".join(["%s"] * len(message_rows))
            cursor.execute(
                f"SELECT rowid, snippet({MESSAGES}, 0, %s, %s, ' … ', 24) FROM {MESSAGES}"
                f" WHERE {MESSAGES} MATCH %s AND rowid IN ({marks})",
                [START, STOP, expression, *message_rows],
            )
            snippets.update({(0, rid): text for rid, text in cursor.fetchall()})
            cursor.execute(
                f"SELECT m.id, m.branch, m.sequence, m.role, m.created_at, m.session_id FROM {names['message']} m"
                f" JOIN {MESSAGES} x ON x.rowid = m.rowid AND x.message_id = m.id WHERE m.rowid IN ({marks})",
                message_rows,
            )
            messages = {str(row[0]).replace("-", ""): row for row in cursor.fetchall()}
        if title_rows:
            marks = ", ".join(["%s"] * len(title_rows))
            cursor.execute(
                f"SELECT rowid, highlight({TITLES}, 0, %s, %s) FROM {TITLES} WHERE {TITLES} MATCH %s AND rowid IN ({marks})",
                [START, STOP, expression, *title_rows],
            )
            snippets.update({(1, rid): text for rid, text in cursor.fetchall()})
        ids = {messages[k][5] for k in messages} | {r[0] for r in page if r[1]}
        if ids:
            marks = ", ".join(["%s"] * len(ids))
            cursor.execute(
                f"SELECT id, title, active_branch, last_sequence, branch_count FROM {names['session']}"
                f" WHERE owner_id = %s AND id IN ({marks})",
                [owner_id, *ids],
            )
            sessions = {str(row[0]).replace("-", ""): row for row in cursor.fetchall()}
    hits = []
    for key, is_title, rid, score in page:
        key = str(key).replace("-", "")
        message = None if is_title else messages.get(key)
        session = sessions.get(key if is_title else (str(message[5]).replace("-", "") if message else ""))
        if session is None or (not is_title and message is None):
            continue  # an entry left behind by a renumbered table: ensure() rebuilds it
        hits.append(
            {
                "key": _uuid(key),
                "is_title": bool(is_title),
                "score": float(score),
                "chat_id": _uuid(session[0]),
                "chat_title": session[1],
                "message": None
                if is_title
                else {"id": _uuid(message[0]), "branch": message[1], "sequence": message[2], "role": message[3], "created_at": message[4]},
                "active_branch": session[2],
                "last_sequence": session[3],
                "branch_count": session[4],
                "headline": snippets.get((int(bool(is_title)), rid), ""),
            }
        )
    return hits


def _uuid(value: Any) -> str:
    import uuid

    return str(uuid.UUID(str(value)))
