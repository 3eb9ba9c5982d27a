"""The search text: checked where it enters, and turned into FTS5 with nothing left to parse."""

from __future__ import annotations

import pytest

from chat.errors import UserError
from chat.search.query import MAX_LENGTH, Term, fts5, parse


@pytest.mark.parametrize("raw", [None, "", "   ", "a\x00b", "\ud800", "x" * (MAX_LENGTH + 1), 5])
def test_text_that_cannot_be_searched_is_refused_with_a_clear_error(raw):
    with pytest.raises(UserError) as refused:
        parse(raw)
    assert refused.value.code == "invalid_query"
    assert refused.value.message


def test_words_are_all_required_phrases_kept_exclusions_and_alternatives_grouped():
    query = parse('deploy  "blue green" -canary rollout or rollback')
    assert query.text == 'deploy "blue green" -canary rollout or rollback'
    assert query.groups == (
        (Term("deploy"),),
        (Term("blue green"),),
        (Term("canary", excluded=True),),
        (Term("rollout"), Term("rollback")),
    )


@pytest.mark.parametrize("raw", ["-deploy", '-"a b"', "!!!", "or", '"', "- or -"])
def test_text_with_no_word_to_look_for_finds_nothing(raw):
    assert not parse(raw).finds_anything


def test_an_unbalanced_quote_runs_to_the_end():
    assert parse('say "hello world').groups == ((Term("say"),), (Term("hello world"),))


@pytest.mark.parametrize(
    "raw",
    ['NEAR(a b)', "body:secret", "a* ^b", "x AND OR NOT y", '"a""b"', "(a", "owner_id:1 OR x", "{body} : a"],
)
def test_fts5_syntax_typed_by_a_user_is_only_ever_words(raw):
    expression = fts5(parse(raw))
    # Every word is inside double quotes (doubled inside): FTS5 reads no operator, column
    # filter or prefix from what was typed.
    outside = expression
    for chunk in expression.split('"')[1::2]:
        outside = outside.replace(f'"{chunk}"', "", 1)
    assert set(outside.replace("(", "").replace(")", "").split()) <= {"AND", "OR", "NOT"}
