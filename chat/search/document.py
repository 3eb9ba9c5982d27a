"""What of a message is searched: the one rule, written once per database.

The searchable text of a message's ``content`` is, in order:

- a plain string (what the user typed) as it is;
- of a list of blocks: each ``text`` block (a reply, or typed text), and for each
  ``tool_result`` that answered a question (it carries ``interactive_data``) the question and
  the answer: the option chosen, or the text typed instead (the tool result says
  ``User selected: <option>`` or ``User replied: <text>``; the prefix is not searched).

Nothing else: tool calls' input, other tools' results and display data are JSON for the
UI and the model, not something a user remembers writing or reading. The database computes
it (a trigger on every write, ``chat.search.postgres`` and ``chat.search.sqlite``), so no
write path can forget it; ``tests/chat/search`` checks the two versions agree.
"""

from __future__ import annotations

from tools.propose_options import REPLIED_PREFIX, SELECTED_PREFIX

assert "'" not in SELECTED_PREFIX + REPLIED_PREFIX  # written into SQL as literals

# Marks around the matched words of a snippet, as the database writes it: private-use
# characters, taken out of the text first (PostgreSQL) or never matching a word (FTS5), so
# nothing a message holds is read as a mark. ``results.fragments`` turns them into data.
START, STOP = "\ue000", "\ue001"

# PostgreSQL: the body of ``chat_search_document(content jsonb) RETURNS text``.
POSTGRES = f"""
SELECT CASE jsonb_typeof(content)
    WHEN 'string' THEN content #>> '{{}}'
    WHEN 'array' THEN coalesce((
        SELECT string_agg(part, E'\\n' ORDER BY n)
        FROM (
            SELECT n, CASE
                WHEN block->>'type' = 'text' THEN block->>'text'
                WHEN block->>'type' = 'tool_result' AND jsonb_typeof(block->'interactive_data'->'question') = 'string'
                THEN concat_ws(E'\\n', block->'interactive_data'->>'question', CASE
                    WHEN jsonb_typeof(block->'content') <> 'string' THEN NULL
                    WHEN left(block->>'content', {len(SELECTED_PREFIX)}) = '{SELECTED_PREFIX}'
                        THEN substr(block->>'content', {len(SELECTED_PREFIX) + 1})
                    WHEN left(block->>'content', {len(REPLIED_PREFIX)}) = '{REPLIED_PREFIX}'
                        THEN substr(block->>'content', {len(REPLIED_PREFIX) + 1})
                END)
            END AS part
            FROM jsonb_array_elements(content) WITH ORDINALITY AS blocks(block, n)
            WHERE jsonb_typeof(block) = 'object'
        ) parts
        WHERE part <> ''
    ), '')
    ELSE ''
END
"""


def sqlite(content: str) -> str:
    """SQLite: the same as an expression over the JSON text ``content`` (a column reference)."""
    value = "b.value"
    answer = f"json_extract({value}, '$.content')"
    return f"""replace(replace((CASE json_type({content})
    WHEN 'text' THEN json_extract({content}, '$')
    WHEN 'array' THEN coalesce((
        SELECT group_concat(part, char(10)) FROM (
            SELECT CASE
                WHEN json_extract({value}, '$.type') = 'text' THEN json_extract({value}, '$.text')
                WHEN json_extract({value}, '$.type') = 'tool_result'
                     AND json_type({value}, '$.interactive_data.question') = 'text'
                THEN json_extract({value}, '$.interactive_data.question') || coalesce(char(10) || CASE
                    WHEN json_type({value}, '$.content') <> 'text' THEN NULL
                    WHEN substr({answer}, 1, {len(SELECTED_PREFIX)}) = '{SELECTED_PREFIX}'
                        THEN substr({answer}, {len(SELECTED_PREFIX) + 1})
                    WHEN substr({answer}, 1, {len(REPLIED_PREFIX)}) = '{REPLIED_PREFIX}'
                        THEN substr({answer}, {len(REPLIED_PREFIX) + 1})
                END, '')
            END AS part
            FROM json_each({content}) AS b WHERE b.type = 'object' ORDER BY b.key
        ) WHERE part <> ''
    ), '')
    ELSE ''
END), char({ord(START)}), ''), char({ord(STOP)}), '')"""
