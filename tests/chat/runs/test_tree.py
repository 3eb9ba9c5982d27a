"""A conversation is a tree with an active path: edits and regenerated replies are new
versions on branches of their own, switching shows another, and every read of the path
costs one index range per fork on it."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async

from chat import services
from chat.db import db_async
from chat.errors import NotFound, UserError
from chat.history import fit_budget
from chat.message_manager import MessageManager
from chat.models import ChatSession, LoopState, Message
from chat.runs import turns
from chat.storage import HybridStorage, database, tree
from tests.chat.runs.test_turns import paused
from tests.chat.storage.conftest import CACHE_KINDS, CountingCache, make_cache
from tests.queries import counting_queries

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = uuid.uuid4()
EMPTY = [{"type": "text", "text": ""}]


@pytest.fixture(autouse=True)
def _no_rate_limit(settings):
    settings.CHAT_RATE_LIMIT_PER_MINUTE = 100_000


@pytest.fixture
def storage(key_prefix):
    return HybridStorage(cache=make_cache("local"))


async def act(storage, user, sid, action):
    begun = await turns.start_turn(user, sid, action, storage=storage, worker_id=WORKER)
    return begun


async def answer(storage, begun, text):
    """What the run would do: write the reply into the turn's empty reply and end the run."""
    await storage.update_message(begun.chat.session_id, begun.reply["sequence"], known=begun.reply, content=text, finished=True)
    await sync_to_async(services.end_run)(begun.chat.session_id, begun.run_id, "idle")


async def path(storage, sid):
    return [m["content"] for m in await storage.load_recent_messages(sid, 100)]


async def chat_with(storage, owner, *exchanges):
    sid = uuid.uuid4()
    for question, reply in exchanges:
        await answer(storage, await act(storage, owner, sid, turns.SendMessage(question)), reply)
    return sid


async def ids(sid):
    return {m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]: m["id"] async for m in Message.objects.filter(session_id=sid).values("id", "content")}


async def test_an_edit_is_answered_on_a_new_branch_and_the_old_version_stays(storage, owner):
    sid = await chat_with(storage, owner, ("2+2?", "4"), ("and 3+3?", "6"))
    before = await ids(sid)

    begun = await act(storage, owner, sid, turns.Edit(before["2+2?"], "2+5?"))
    path_event, message = begun.events
    assert path_event == {"type": "path", "sequence": 1}
    assert (message["sequence"], message["content"]) == (1, "2+5?")
    await answer(storage, begun, "7")

    assert await path(storage, sid) == ["2+5?", "7"]
    assert await Message.objects.filter(session_id=sid).acount() == 6  # nothing was lost
    session = await ChatSession.objects.aget(pk=sid)
    assert (session.active_branch, session.branch_count, session.last_sequence, session.message_count) == (1, 1, 2, 6)
    versions = await sync_to_async(tree.versions)(sid, [{"id": message["message_id"], "branch": 1, "sequence": 1}])
    found = versions[message["message_id"]]
    assert (found.index, found.count) == (2, 2) and found.ids[0] == before["2+2?"]


async def test_a_reply_on_an_edited_path_records_which_path_its_prompt_came_from(storage, owner):
    sid = await chat_with(storage, owner, ("2+2?", "4"), ("and 3+3?", "6"))
    begun = await act(storage, owner, sid, turns.Edit((await ids(sid))["and 3+3?"], "and 4+4?"))
    mm = MessageManager(sid, owner, storage)
    await mm.load(before=begun.reply["sequence"])
    # The prompt is the path through the edit, which sequence numbers alone do not name.
    assert [m["sequence"] for m in mm.messages] == [1, 2, 3]
    assert mm.context_record() == {"first_sequence": 1, "last_sequence": 3, "dropped": 0, "branch": begun.reply["branch"]}


@pytest.mark.parametrize("kind", CACHE_KINDS)
async def test_an_edit_or_regenerated_reply_keeps_the_cache_warm_on_what_the_paths_share(owner, kind, key_prefix):
    cache = CountingCache(make_cache(kind))
    storage = HybridStorage(cache=cache)
    sid = await chat_with(storage, owner, ("one", "1"), ("two", "2"), ("three", "3"))
    await storage.load_within_budget(sid, 10_000)
    old = await ids(sid)
    for action, text in [(turns.Regenerate(old["3"]), "3 again"), (turns.Edit(old["two"], "two, edited"), "2 again")]:
        await answer(storage, await act(storage, owner, sid, action), text)
        cache.calls.clear()
        window = await storage.load_within_budget(sid, 10_000)
        assert cache.calls == ["read_budget"]  # a hit: no database read, no fill
        assert window == (await db_async(database.load_within_budget)(sid, 10_000)).messages
    assert [m["content"] for m in window] == ["one", "1", "two, edited", "2 again"]


@pytest.mark.parametrize("kind", CACHE_KINDS)
async def test_a_fork_before_the_cached_tail_leaves_a_miss_not_a_wrong_path(owner, kind, key_prefix):
    storage = HybridStorage(cache=make_cache(kind, max_messages=4))
    sid = await chat_with(storage, owner, *[(f"q{i}", f"a{i}") for i in range(5)])
    await storage.load_recent_messages(sid, 4)
    await answer(storage, await act(storage, owner, sid, turns.Edit((await ids(sid))["q1"], "q1 edited")), "a1 edited")
    assert await storage.cache.read_recent(str(sid), 1) is None
    assert await path(storage, sid) == ["q0", "a0", "q1 edited", "a1 edited"]


async def test_switching_shows_the_old_version_with_all_that_followed_it_and_back_again(storage, owner):
    sid = await chat_with(storage, owner, ("first", "one"), ("second", "two"), ("third", "three"))
    old = await ids(sid)
    await answer(storage, await act(storage, owner, sid, turns.Edit(old["second"], "second, edited")), "two again")
    edited = await ids(sid)
    await answer(storage, await act(storage, owner, sid, turns.SendMessage("after the edit")), "more")
    assert await path(storage, sid) == ["first", "one", "second, edited", "two again", "after the edit", "more"]

    event, revision = await sync_to_async(turns.switch_path)(owner.pk, sid, old["second"])
    await storage.path_changed(sid, revision)
    assert event == {"type": "path", "sequence": 3}
    assert await path(storage, sid) == ["first", "one", "second", "two", "third", "three"]
    # The next message continues the path shown.
    await answer(storage, await act(storage, owner, sid, turns.SendMessage("fourth")), "four")
    assert (await path(storage, sid))[-2:] == ["fourth", "four"]

    # Back to the edited version: it lands on the leaf chosen there last.
    _, revision = await sync_to_async(turns.switch_path)(owner.pk, sid, edited["second, edited"])
    await storage.path_changed(sid, revision)
    assert await path(storage, sid) == ["first", "one", "second, edited", "two again", "after the edit", "more"]


async def test_a_regenerated_reply_is_a_new_version_of_it(storage, owner):
    sid = await chat_with(storage, owner, ("tell me a joke", "joke one"))
    old = await ids(sid)
    begun = await act(storage, owner, sid, turns.Regenerate(old["joke one"]))
    assert begun.events == [{"type": "path", "sequence": 2}]
    assert (begun.reply["sequence"], begun.reply["content"]) == (2, EMPTY)
    await answer(storage, begun, "joke two")
    assert await path(storage, sid) == ["tell me a joke", "joke two"]
    new = (await ids(sid))["joke two"]
    found = (await sync_to_async(tree.versions)(sid, [{"id": new, "branch": 1, "sequence": 2}]))[new]
    assert (found.index, found.count) == (2, 2)


@pytest.mark.parametrize("kind", ["edit", "regenerate"])
async def test_nothing_forks_while_a_run_goes_on(storage, owner, kind):
    sid = await chat_with(storage, owner, ("hi", "hello"))
    old = await ids(sid)
    await act(storage, owner, sid, turns.SendMessage("again"))  # its run goes on
    action = turns.Edit(old["hi"], "hey") if kind == "edit" else turns.Regenerate(old["hello"])
    with pytest.raises(UserError) as busy:
        await act(storage, owner, sid, action)
    assert busy.value.code == "busy"
    assert not await sync_to_async(ChatSession.objects.filter(pk=sid, branch_count__gt=0).exists)()


async def test_what_cannot_be_edited_or_regenerated_is_refused_and_changes_nothing(storage, owner, stranger):
    sid = await chat_with(storage, owner, ("hi", "hello"))
    old = await ids(sid)
    for action, code in [
        (turns.Edit(old["hello"], "rewritten"), "not_editable"),  # a reply
        (turns.Regenerate(old["hi"]), "not_a_reply"),  # a message of the user's
        (turns.Edit(uuid.uuid4(), "nowhere"), "not_found"),
    ]:
        with pytest.raises(UserError) as refused:
            await act(storage, owner, sid, action)
        assert refused.value.code == code
    with pytest.raises(NotFound):
        await act(storage, stranger, sid, turns.Edit(old["hi"], "theirs"))
    assert await path(storage, sid) == ["hi", "hello"]
    assert (await ChatSession.objects.aget(pk=sid)).branch_count == 0


async def test_a_message_off_the_path_shown_is_switched_to_before_it_is_edited(storage, owner):
    sid = await chat_with(storage, owner, ("hi", "hello"))
    old = await ids(sid)
    await answer(storage, await act(storage, owner, sid, turns.Edit(old["hi"], "hey")), "hey there")
    with pytest.raises(UserError) as refused:
        await act(storage, owner, sid, turns.Edit(old["hi"], "again"))
    assert refused.value.code == "not_on_path"


async def test_an_edit_while_a_question_waits_leaves_the_question_behind(storage, owner):
    sid = await chat_with(storage, owner, ("pick one", "which?"))
    old = await ids(sid)
    await LoopState.objects.acreate(session_id=sid, tool_use_id="q", tool_name="propose_options", question="?", options=["a"])
    await ChatSession.objects.filter(pk=sid).aupdate(state="awaiting_input")
    with pytest.raises(UserError) as refused:  # switching needs the answer first
        await sync_to_async(turns.switch_path)(owner.pk, sid, old["pick one"])
    assert refused.value.code == "awaiting_input"

    begun = await act(storage, owner, sid, turns.Edit(old["pick one"], "never mind"))
    assert not await LoopState.objects.filter(session_id=sid).aexists()
    assert (await ChatSession.objects.aget(pk=sid)).state == "running"
    await answer(storage, begun, "ok")
    assert await path(storage, sid) == ["never mind", "ok"]


async def test_a_budget_read_of_a_forked_path_is_exact_and_reads_one_range_per_segment(owner):
    storage = HybridStorage(cache=make_cache("local"))
    sid = await chat_with(storage, owner, *[(f"question {n} " + "q" * 40, f"reply {n} " + "r" * 40) for n in range(30)])
    middle = (await ids(sid))["question 10 " + "q" * 40]
    await answer(storage, await act(storage, owner, sid, turns.Edit(middle, "question 10, edited " + "e" * 40)), "reply again " + "r" * 40)
    for n in range(5):
        await answer(storage, await act(storage, owner, sid, turns.SendMessage(f"later {n} " + "l" * 40)), f"later reply {n}")
    everything = [
        m async for m in Message.objects.filter(session_id=sid).order_by("sequence").values("sequence", "branch", "cumulative_tokens", "tokens", "content")
    ]
    on_path = [m for m in everything if m["branch"] == 1 or m["sequence"] <= 20]
    assert [m["sequence"] for m in on_path] == list(range(1, 33))
    total = on_path[-1]["cumulative_tokens"]
    for budget in (10, 100, 200, 400, 10_000):
        async with counting_queries() as queries:
            snapshot = await db_async(database.load_within_budget)(sid, budget)
        expected = [m["sequence"] for m in on_path if m["cumulative_tokens"] > total - budget]
        assert [m["sequence"] for m in snapshot.messages] == expected, budget
        assert all(m["branch"] in (0, 1) for m in snapshot.messages)
        fits = fit_budget(snapshot.messages, budget)
        assert sum(m["tokens"] for m in fits) <= budget
        # Within the edited branch: one statement; across the fork: the earlier segment too.
        reaches_fork = total - budget < on_path[19]["cumulative_tokens"]
        assert len(queries) == (3 if reaches_fork else 1), (budget, queries)


@pytest.mark.parametrize("kind", CACHE_KINDS)
async def test_a_switch_never_serves_the_old_path_from_the_cache(owner, key_prefix, kind):
    storage = HybridStorage(cache=make_cache(kind))
    sid = await chat_with(storage, owner, ("a", "b"), ("c", "d"))
    old = await ids(sid)
    await answer(storage, await act(storage, owner, sid, turns.Edit(old["c"], "c2")), "d2")
    assert await path(storage, sid) == ["a", "b", "c2", "d2"]  # cached now
    _, revision = await sync_to_async(turns.switch_path)(owner.pk, sid, old["c"])
    await storage.path_changed(sid, revision)
    assert await path(storage, sid) == ["a", "b", "c", "d"]
    assert await storage.load_within_budget(sid, 10_000) == await storage.load_recent_messages(sid, 100)


@pytest.mark.parametrize("kind", CACHE_KINDS)
@pytest.mark.parametrize("change", ["switch", "edit"])
async def test_a_reader_that_read_the_old_path_before_the_path_moved_cannot_cache_it(owner, key_prefix, kind, change):
    """The stale-fill race across a fork: a cold read of the old path is delayed between its
    database read and its cache fill while the path moves (a switch, or an edit answered);
    its fill is refused, so no later read is served the old path."""
    storage = HybridStorage(cache=make_cache(kind))
    sid = await chat_with(storage, owner, ("a", "b"), ("c", "d"))
    old = await ids(sid)
    if change == "switch":
        await answer(storage, await act(storage, owner, sid, turns.Edit(old["c"], "c2")), "d2")
    await storage.drop_cache(sid)
    read_done, release = asyncio.Event(), asyncio.Event()
    real_fill = storage.cache.fill

    async def slow_fill(session_id, snapshot):
        read_done.set()  # the reader has the path as it was ...
        await release.wait()  # ... and fills the cache only after the path moved
        return await real_fill(session_id, snapshot)

    storage.cache.fill = slow_fill
    reader = asyncio.create_task(storage.load_within_budget(sid, 10_000))
    await read_done.wait()
    storage.cache.fill = real_fill
    if change == "switch":
        _, revision = await sync_to_async(turns.switch_path)(owner.pk, sid, old["c"])
        await storage.path_changed(sid, revision)
        expected = ["a", "b", "c", "d"]
    else:
        await answer(storage, await act(storage, owner, sid, turns.Edit(old["c"], "c3")), "d3")
        expected = ["a", "b", "c3", "d3"]
    release.set()
    seen = [m["content"] for m in await reader]
    assert seen != expected  # the reader itself saw the path before it moved
    assert await path(storage, sid) == expected
    assert [m["content"] for m in await storage.load_within_budget(sid, 10_000)] == expected
    assert await storage.load_within_budget(sid, 10_000) == (await db_async(database.load_within_budget)(sid, 10_000)).messages


async def test_a_fork_starts_a_new_chat_with_the_path_up_to_a_message(storage, owner, stranger):
    sid = await chat_with(storage, owner, ("one", "uno"), ("two", "dos"), ("three", "tres"))
    old = await ids(sid)
    fork = await sync_to_async(services.fork_session)(owner, sid, old["dos"])
    assert await path(storage, fork.pk) == ["one", "uno", "two", "dos"]
    assert (fork.owner_id, fork.last_sequence, fork.message_count) == (owner.pk, 4, 4)
    # It goes on on its own; the original is untouched.
    await answer(storage, await act(storage, owner, fork.pk, turns.SendMessage("cuatro?")), "four")
    assert await path(storage, sid) == ["one", "uno", "two", "dos", "three", "tres"]
    with pytest.raises(NotFound):
        await sync_to_async(services.fork_session)(stranger, sid, old["dos"])


async def test_a_fork_of_the_reply_that_asked_a_question_waits_on_it_too(storage, owner):
    sid = await paused(storage, owner)
    asked, typed = [
        await Message.objects.filter(session_id=sid, sequence=n).values_list("id", flat=True).aget() for n in (2, 1)
    ]
    fork = await sync_to_async(services.fork_session)(owner, sid, asked)
    assert fork.state == "awaiting_input"
    waiting = await sync_to_async(database.load_loop_state)(fork.pk)
    assert (waiting["tool_use_id"], waiting["question"], waiting["options"]) == ("toolu_q", "Which?", ["Python", "Rust"])
    # Answered in the fork, the turn goes on there; the chat it came from still waits.
    begun = await act(storage, owner, fork.pk, turns.Choose("toolu_q", "Rust"))
    assert begun.events[1]["content"] == "User selected: Rust"
    await answer(storage, begun, "Rust it is.")
    assert (await ChatSession.objects.aget(pk=sid)).state == "awaiting_input"
    assert await LoopState.objects.filter(session_id=sid).aexists()
    # A fork from before the question holds none, and waits on nothing.
    earlier = await sync_to_async(services.fork_session)(owner, sid, typed)
    assert earlier.state == "idle"
    assert not await LoopState.objects.filter(session_id=earlier.pk).aexists()


@pytest.mark.parametrize(
    "title, expected",
    [
        ("Spanish numbers", "Spanish numbers (fork)"),
        ("n" * services.TITLE_MAX_LENGTH, "n" * (services.TITLE_MAX_LENGTH - 7) + " (fork)"),  # the suffix is kept
        ("", ""),  # untitled stays untitled: titles are made from a chat's first message
        # A fork of a fork counts, rather than saying "(fork)" twice.
        ("Spanish numbers (fork)", "Spanish numbers (fork 2)"),
        ("Spanish numbers (fork 9)", "Spanish numbers (fork 10)"),
        ("n" * (services.TITLE_MAX_LENGTH - 7) + " (fork)", "n" * (services.TITLE_MAX_LENGTH - 9) + " (fork 2)"),
        ("Forks (fork) and knives", "Forks (fork) and knives (fork)"),  # only a suffix counts
    ],
)
async def test_a_fork_is_titled_after_its_source(storage, owner, title, expected):
    sid = await chat_with(storage, owner, ("one", "uno"), ("two", "dos"))
    await ChatSession.objects.filter(pk=sid).aupdate(title=title)
    fork = await sync_to_async(services.fork_session)(owner, sid, (await ids(sid))["uno"])
    assert (await ChatSession.objects.aget(pk=fork.pk)).title == expected
    assert len(expected) <= services.TITLE_MAX_LENGTH
    assert (await ChatSession.objects.aget(pk=sid)).title == title
