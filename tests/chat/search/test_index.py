"""The search index follows every write of a message or a title, in the same statement, on
both databases; it holds what a user reads and typed, never tool JSON; a user finds only
their own chats; hits are ranked, paged by cursor and marked."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import call_command
from django.db import connection

from chat import services
from chat.models import ChatSession, Message
from chat.search import index, postgres, sqlite
from chat.search.document import START, STOP
from chat.search.query import parse
from chat.search.results import Position, fragments, search
from chat.storage import database, tree
from tests.factories import seed_history, seed_messages, tool_turn

pytestmark = pytest.mark.django_db


def find(user, text, **options):
    return search(user, parse(text), **options).hits


def found_messages(user, text):
    return [hit["message"]["id"] for hit in find(user, text) if hit["message"]]


def entries() -> int:
    """Index rows of messages, whatever the database."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {postgres.TABLE if connection.vendor == 'postgresql' else sqlite.MESSAGES}")
        return cursor.fetchone()[0]


def chat_with(owner, *contents, title=""):
    session = ChatSession.objects.create(owner=owner, title=title)
    roles = ("user", "assistant")
    saved = database.save_messages(session.pk, [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)])
    return session, saved.messages


def question_answered(answer: str) -> list[dict]:
    return [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_q",
            "content": answer,
            "interactive_data": {"question": "Which database suits the archive?", "options": ["Postgres", "Cassandra"]},
        }
    ]


# --- what is searched ----------------------------------------------------------------------


def test_typed_text_and_reply_text_are_found_with_the_matched_words_marked(owner):
    _, (asked, replied) = chat_with(owner, "Where did I park the zeppelin?", [{"type": "text", "text": "The zeppelin is in hangar nine."}])
    hits = find(owner, "zeppelin")
    assert {hit["message"]["id"] for hit in hits} == {asked["id"], replied["id"]}
    for hit in hits:
        assert {"text": "zeppelin", "match": True} in hit["snippet"]
        assert all(not fragment["match"] for fragment in hit["snippet"] if fragment["text"] != "zeppelin")


def test_the_last_word_is_found_as_the_start_of_a_word_as_it_is_typed(owner):
    _, (asked, replied) = chat_with(owner, "Tell me about kiwis", [{"type": "text", "text": "Kiwifruit grows on vines."}])
    assert set(found_messages(owner, "kiw")) == {asked["id"], replied["id"]}
    assert found_messages(owner, "about kiw") == [asked["id"]]
    assert found_messages(owner, "kiwis or vin") == found_messages(owner, "kiwis or vines")
    # Only the last word, and not when quoted or excluded: those match as written.
    assert found_messages(owner, "kiw about") == []
    assert found_messages(owner, '"kiw"') == []
    assert found_messages(owner, "tell -kiw") == [asked["id"]]
    [hit] = find(owner, "kiwif")
    assert {"text": "Kiwifruit", "match": True} in hit["snippet"]


def test_tool_calls_and_tool_results_are_not_searched(owner):
    seed_messages(owner, tool_turn("toolu_1", question="sum please"))
    assert find(owner, "sum")  # the typed question is
    # The call's input ({"expression": "2+2"}), its result ("4") and the keys around them are not.
    for word in ("expression", '"2+2"', "toolu_1", "tool_use", "tool_result", "display_data"):
        assert not find(owner, word), word
    assert [hit["message"]["sequence"] for hit in find(owner, "4")] == [4]  # "It is 4.", not the result


@pytest.mark.parametrize("answer, word", [("User selected: Cassandra", "cassandra"), ("User replied: maybe sqlite instead", "sqlite")])
def test_a_question_and_its_answer_are_searched_without_the_prefix(owner, answer, word):
    _, (_, _, results) = chat_with(owner, "pick one", [{"type": "text", "text": "Let me ask."}], question_answered(answer))
    assert found_messages(owner, word) == [results["id"]]
    assert found_messages(owner, "archive") == [results["id"]]  # the question
    assert not find(owner, "selected") and not find(owner, "replied")
    assert not find(owner, "postgres" if word == "cassandra" else "cassandra")  # options not chosen


def test_a_user_never_finds_another_users_chats(owner, stranger):
    chat_with(stranger, "the secret plan is marmalade", title="Marmalade")
    assert find(owner, "marmalade") == []
    assert len(find(stranger, "marmalade")) == 2  # the message and the title


# --- every write path -------------------------------------------------------------------------


def test_a_reply_rewritten_in_place_is_searched_as_it_is_now(owner):
    session, (_, reply) = chat_with(owner, "hello", [{"type": "text", "text": "draft about walruses"}])
    database.update_message(session.pk, reply["sequence"], known=reply, content=[{"type": "text", "text": "final about narwhals"}])
    assert find(owner, "walruses") == []
    assert found_messages(owner, "narwhals") == [reply["id"]]
    database.update_message(session.pk, reply["sequence"], content=[{"type": "text", "text": ""}])
    assert find(owner, "narwhals") == []


@pytest.mark.parametrize("ended_as", ["idle", "failed", "awaiting_input"])
def test_a_reply_being_written_is_indexed_when_its_run_ends_not_at_each_rewrite(owner, ended_as):
    session, (_, reply) = chat_with(owner, "tell me about walruses", [{"type": "text", "text": ""}])
    ChatSession.objects.filter(pk=session.pk).update(state="running")
    before = entries()
    for text in ("Walruses live", "Walruses live in the Arctic", "Walruses live in the Arctic and eat clams"):
        reply = database.update_message(session.pk, reply["sequence"], known=reply, content=[{"type": "text", "text": text}], finished=False).message
    assert entries() == before and found_messages(owner, "arctic") == []  # streaming: not indexed at each rewrite
    # Stopped, failed, or its process died: the run ends and what was kept is found.
    ChatSession.objects.filter(pk=session.pk).update(state=ended_as)
    assert found_messages(owner, "clams") == [reply["id"]]
    assert entries() == before + 1


def test_a_reply_that_finishes_is_indexed_at_once_even_while_its_run_goes_on(owner):
    session, (_, reply) = chat_with(owner, "and seals?", [{"type": "text", "text": ""}])
    ChatSession.objects.filter(pk=session.pk).update(state="running")  # a tool call follows, say
    database.update_message(session.pk, reply["sequence"], known=reply, content=[{"type": "text", "text": "Seals bark."}], finished=True)
    assert found_messages(owner, "bark") == [reply["id"]]


def test_bulk_inserted_and_forked_messages_are_indexed(owner):
    source = seed_history(owner, 6, content=lambda seq: f"line {seq} about quokkas")
    assert len(find(owner, "quokkas")) == 6
    third = Message.objects.get(session=source, sequence=3)
    fork = services.fork_session(owner, source.pk, third.pk)
    hits = find(owner, "quokkas")
    assert len(hits) == 9
    assert sum(hit["chat"]["id"] == str(fork.pk) for hit in hits) == 3


def test_deleting_messages_and_chats_removes_their_entries(owner):
    session, saved = chat_with(owner, "first about lemurs", [{"type": "text", "text": "second about lemurs"}])
    other, _ = chat_with(owner, "unrelated lemurs")
    before = entries()
    assert database.remove_last(session.pk, saved[-1]["sequence"])
    assert entries() == before - 1
    services.delete_session(owner, session.pk)
    assert entries() == before - 2
    assert [hit["chat"]["id"] for hit in find(owner, "lemurs")] == [str(other.pk)]


def test_titles_are_searched_as_they_are_now(owner):
    session, _ = chat_with(owner, "hello")
    assert find(owner, "aardvark") == []
    services.rename_session(owner, session.pk, "Aardvark care")
    [hit] = find(owner, "aardvark")
    assert hit["message"] is None and hit["chat"] == {"id": str(session.pk), "title": "Aardvark care"}
    assert hit["snippet"] == [{"text": "Aardvark", "match": True}, {"text": " care", "match": False}]
    services.rename_session(owner, session.pk, "Otters")
    assert find(owner, "aardvark") == []


def test_a_message_of_another_version_is_found_and_says_so(owner):
    session, (asked, _) = chat_with(owner, "tell me about pangolins", [{"type": "text", "text": "pangolins have scales"}])
    tree.fork(session.pk, 0)  # an edit of the first message: a new branch, the old path kept
    database.save_messages(session.pk, [{"role": "user", "content": "tell me about armadillos"}])
    on_path = {hit["message"]["id"]: hit["message"]["on_active_path"] for hit in find(owner, "pangolins")}
    assert on_path == {asked["id"]: False, **{m: False for m in on_path if m != asked["id"]}}
    [armadillo] = find(owner, "armadillos")
    assert armadillo["message"]["on_active_path"] is True


# --- ranking and pages ------------------------------------------------------------------------


def test_pages_follow_the_ranking_and_hold_every_hit_once(owner):
    session, _ = chat_with(owner, *[f"note {i} on capybaras" + " capybaras" * (i % 3) for i in range(23)])
    seen, after = [], None
    while True:
        page = search(owner, parse("capybaras"), after=after, limit=5)
        seen += [hit["message"]["id"] for hit in page.hits]
        if page.next is None:
            break
        assert isinstance(page.next, Position)
        after = page.next
    assert len(seen) == 23 and len(set(seen)) == 23


def test_of_two_equally_relevant_messages_the_newer_ranks_first(owner):
    old, _ = chat_with(owner, "report on ocelots")
    new, _ = chat_with(owner, "report on ocelots")
    Message.objects.filter(session=old).update(created_at=Message.objects.get(session=new).created_at.replace(year=2020))
    index.rebuild()  # created_at is copied into the index when a message is written
    assert [hit["chat"]["id"] for hit in find(owner, "ocelots")] == [str(new.pk), str(old.pk)]


def test_snippet_fragments_keep_the_text_as_text():
    text = f"a {START}<b>x</b>{STOP} and <script>"
    assert fragments(text) == [
        {"text": "a ", "match": False},
        {"text": "<b>x</b>", "match": True},
        {"text": " and <script>", "match": False},
    ]


# --- backfill, rebuild, repair ----------------------------------------------------------------


def _forget_everything() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {postgres.TABLE if connection.vendor == 'postgresql' else sqlite.MESSAGES}")
        if connection.vendor != "postgresql":
            cursor.execute(f"DELETE FROM {sqlite.TITLES}")


def test_the_backfill_indexes_what_was_stored_before_and_resumes_where_it_stopped(owner):
    chat_with(owner, *[f"old message {i} about tapirs" for i in range(7)], title="Tapirs")
    _forget_everything()
    assert find(owner, "tapirs") == [] or all(hit["message"] is None for hit in find(owner, "tapirs"))
    # Stopped after one batch of three, then run again: every message once.
    first = index.backend().index_batch(None, 3, only_missing=True)
    assert first is not None and first[1] == 3
    assert entries() == 3
    index.backfill(batch=2)
    assert entries() == 7
    assert len([hit for hit in find(owner, "tapirs") if hit["message"]]) == 7


def test_rebuild_search_index_indexes_everything_again(owner):
    chat_with(owner, "a word about tapirs", title="Tapir notes")
    _forget_everything()
    out = io.StringIO()
    call_command("rebuild_search_index", "--batch-size", "1", stdout=out)
    assert "Done: 1 messages read." in out.getvalue()
    assert len(find(owner, '"tapir"')) == 1  # the title ("tapir" is not "tapirs": no stemming)
    assert len(find(owner, "tapir")) == 2  # as typed, the start of "tapirs" too
    assert len(find(owner, "tapirs")) == 1


@pytest.mark.postgres
def test_the_text_search_configuration_is_a_setting(owner, settings):
    chat_with(owner, "we deployed the servers")
    assert find(owner, "deploying") == []
    settings.SEARCH_CONFIG = "english"
    index.rebuild()
    assert len(find(owner, "deploying")) == 1  # stemmed: deploy


def test_a_table_changed_by_a_migration_keeps_or_gets_back_its_index(owner):
    chat_with(owner, "ibex migration")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # PostgreSQL alters a table in place: its triggers stay.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the test's transaction holds deferred checks
            cursor.execute(f"ALTER TABLE {Message._meta.db_table} ADD COLUMN migrated_meanwhile integer")
        else:
            # SQLite rebuilds it, and the triggers go with the old table.
            cursor.execute("DROP TRIGGER chat_message_search_insert")
    index.ensure()
    assert len(find(owner, "ibex")) == 1
    chat_with(owner, "another ibex")
    assert len(find(owner, "ibex")) == 2


def test_search_ids_are_canonical(owner):
    session, (message,) = chat_with(owner, "okapi")
    [hit] = find(owner, "okapi")
    assert hit["chat"]["id"] == str(uuid.UUID(str(session.pk)))
    assert hit["message"]["id"] == message["id"]
    assert hit["message"]["sequence"] == 1 and hit["message"]["role"] == "user" and hit["message"]["created_at"].tzinfo


def test_mark_characters_in_a_message_never_mark_a_word(owner):
    chat_with(owner, f"odd {START}text{STOP} about geckos", title=f"{START}Geckos{STOP}")
    for hit in find(owner, "geckos"):
        assert [f["text"].lower() for f in hit["snippet"] if f["match"]] == ["geckos"]
        assert START not in "".join(f["text"] for f in hit["snippet"])
