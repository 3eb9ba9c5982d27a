"""The history sent to the model is always valid (DESIGN.md rule 2)."""

from __future__ import annotations

import pytest

from chat import history
from tests.factories import tool_turn


def stored(messages):
    """Number raw messages like storage does, with 10 tokens each."""
    out, cumulative = [], 0
    for seq, m in enumerate(messages, start=1):
        cumulative += 10
        out.append({**m, "sequence": seq, "tokens": 10, "cumulative_tokens": cumulative})
    return out


def assert_valid(api):
    assert api, "history must not be empty"
    assert api[0]["role"] == "user"
    assert not any(b["type"] == "tool_result" for b in api[0]["content"])
    for before, after in zip(api, api[1:]):
        assert before["role"] != after["role"], "roles must alternate"
    for index, message in enumerate(api):
        uses = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
        if uses:
            following = api[index + 1]["content"]
            results = [b["tool_use_id"] for b in following if b["type"] == "tool_result"]
            assert results == uses, "each tool_use is answered first thing in the next message"
            assert all(b["type"] == "tool_result" for b in following[: len(uses)])


def test_extra_keys_are_stripped_and_stored_content_is_untouched():
    messages = stored(tool_turn("toolu_1"))
    api = history.to_api_messages(messages)
    assert_valid(api)
    result = api[2]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4"}
    assert messages[2]["content"][0]["display_data"] == {"x": 1}


def test_string_content_becomes_a_text_block_and_empty_text_is_dropped():
    api = history.to_api_messages(stored([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": ""}]}]))
    assert api == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_leading_reply_and_orphan_tool_results_are_dropped():
    turn = tool_turn("toolu_1")
    api = history.to_api_messages(stored(turn[2:] + [{"role": "user", "content": "next"}]))
    assert_valid(api)
    assert api[0]["content"] == [{"type": "text", "text": "next"}]


def test_dangling_tool_use_before_a_new_user_turn_is_repaired_with_an_error_result():
    turn = tool_turn("toolu_1")
    api = history.to_api_messages(stored(turn[:2] + [{"role": "user", "content": "are you there?"}]))
    assert_valid(api)
    repaired = api[2]["content"]
    assert repaired[0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": history.INTERRUPTED_TOOL_RESULT,
        "is_error": True,
    }
    assert repaired[1] == {"type": "text", "text": "are you there?"}


def test_dangling_tool_use_at_the_end_gets_an_error_result():
    api = history.to_api_messages(stored(tool_turn("toolu_1")[:2]))
    assert_valid(api)
    assert api[-1]["role"] == "user"
    assert api[-1]["content"][0]["is_error"] is True


def test_missing_one_of_two_results_is_filled_and_results_follow_tool_use_order():
    messages = [
        {"role": "user", "content": "two tools"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "a", "name": "calculate", "input": {}},
                {"type": "tool_use", "id": "b", "name": "calculate", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b", "content": "B"}]},
    ]
    api = history.to_api_messages(stored(messages))
    assert_valid(api)
    assert [b["tool_use_id"] for b in api[2]["content"]] == ["a", "b"]
    assert api[2]["content"][0]["is_error"] is True
    assert api[2]["content"][1]["content"] == "B"


def test_consecutive_messages_of_one_role_are_merged():
    messages = [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "a"},
        {"role": "assistant", "content": "b"},
    ]
    api = history.to_api_messages(stored(messages))
    assert_valid(api)
    assert api == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]


def test_tool_result_inner_blocks_keep_only_api_keys():
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}, "extra": 1}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": [{"type": "text", "text": "ok", "citations_extra": 1}, {"type": "widget"}],
                    "is_error": False,
                    "artifact_data": {"id": 1},
                    "requires_user_input": True,
                    "interactive_data": {"options": []},
                }
            ],
        },
    ]
    api = history.to_api_messages(stored(messages))
    assert api[1]["content"] == [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]
    assert api[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "ok"}], "is_error": False}
    ]


@pytest.mark.parametrize("content", [None, "", [], [{"no": "type"}], ["text"], 5, [{"type": "text", "text": float("nan")}]])
def test_check_content_rejects_malformed_content(content):
    if content == "":
        history.check_content(content)  # an empty string is a (useless but valid) text
        return
    with pytest.raises(ValueError):
        history.check_content(content)


def test_estimate_counts_only_what_the_model_sees():
    plain = [{"type": "tool_result", "tool_use_id": "t", "content": "4"}]
    padded = [{**plain[0], "display_data": {"rows": "x" * 4000}}]
    assert history.estimate_tokens(padded) == history.estimate_tokens(plain)
    assert history.estimate_tokens("") == 1
    assert history.estimate_tokens("x" * 400) == 100


def test_drop_to_turn_start_skips_replies_and_tool_results():
    messages = stored(tool_turn("a") + tool_turn("b"))
    assert history.drop_to_turn_start(messages[1:])[0]["sequence"] == 5
    assert history.drop_to_turn_start(messages[2:])[0]["sequence"] == 5
    assert history.drop_to_turn_start(messages[5:]) == []


def test_coarse_cut_keeps_the_start_fixed_while_history_grows_within_a_step():
    messages = stored([{"role": "user" if i % 2 else "assistant", "content": "m"} for i in range(1, 101)])
    starts = set()
    for end in range(60, 70):  # ten turns of growth, 100 tokens: less than one step
        window = [m for m in messages[:end] if m["cumulative_tokens"] > end * 10 - 300]
        cut = history.coarse_cut(window, 300, 200)
        assert sum(m["tokens"] for m in cut) <= 300
        starts.add(cut[0]["sequence"])
    assert len(starts) <= 2, starts


def sized(messages, tokens):
    """Number raw messages like storage does, message i with ``tokens[i]`` tokens."""
    out, cumulative = [], 0
    for seq, (m, size) in enumerate(zip(messages, tokens), start=1):
        cumulative += size
        out.append({**m, "sequence": seq, "tokens": size, "cumulative_tokens": cumulative})
    return out


def window(messages, budget):
    """What a budget read returns, fitted: the newest messages whose tokens fit."""
    total = messages[-1]["cumulative_tokens"]
    return [m for m in messages if m["cumulative_tokens"] - m["tokens"] >= total - budget]


@pytest.mark.parametrize("budget", [180, 1_000, 19_999, 20_000, 20_001, 39_999])
def test_a_budget_below_the_step_still_sends_the_newest_turn(budget):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "m"} for i in range(10)]
    messages = sized(turns, [100] * 8 + [80, 90])  # the newest turn: 170 tokens
    cut = history.coarse_cut(window(messages, budget), budget, 20_000)
    kept = history.drop_to_turn_start(cut)
    assert [m["sequence"] for m in kept][-2:] == [9, 10]
    assert sum(m["tokens"] for m in kept) <= budget


@pytest.mark.parametrize("newest", [1, 179, 180])
def test_a_newest_turn_of_nearly_the_whole_budget_is_sent_alone(newest):
    # With a step of 20,000 the coarse cut would land past the end: at 20,000 of 10,180.
    messages = sized(
        [{"role": "user", "content": "old"}, {"role": "assistant", "content": "old"}, {"role": "user", "content": "new"}],
        [5_000, 5_000, newest],
    )
    kept = history.drop_to_turn_start(history.coarse_cut(window(messages, 180), 180, 20_000))
    assert [m["sequence"] for m in kept] == [3]


def test_the_coarse_cut_never_splits_the_newest_turns_tool_pairs():
    messages = sized(tool_turn("a") + tool_turn("b"), [10, 10, 10, 10, 10, 10, 10, 10])
    for budget in range(40, 80):
        kept = history.drop_to_turn_start(history.coarse_cut(window(messages, budget), budget, 1000))
        assert kept[0]["sequence"] == 5
        assert_valid(history.to_api_messages(kept))


def test_newest_turn_start_skips_tool_results_and_replies():
    messages = stored(tool_turn("a"))
    assert history.newest_turn_start(messages) == 0
    assert history.newest_turn_start(messages[1:]) is None
