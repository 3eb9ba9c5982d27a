"""The search text: checked where it enters, and turned into FTS5 with nothing left to parse."""

from __future__ import annotations

import pytest

from chat.errors import UserError
from chat.search.query import MAX_LENGTH, Term, fts5, parse, tsquery


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
        (Term("rollout"), Term("rollback", prefix=True)),  # the last word: also a prefix
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
    # filter or prefix from what was typed; the only prefix mark is the expression's own,
    # after the last word's closing quote.
    outside = expression
    for chunk in expression.split('"')[1::2]:
        outside = outside.replace(f'"{chunk}"', "", 1)
    assert set(outside.replace("(", " ").replace(")", " ").replace("*", " * ").split()) <= {"AND", "OR", "NOT", "*"}
    assert expression.count("*") - "".join(expression.split('"')[1::2]).count("*") <= 1


@pytest.mark.parametrize(
    ("raw", "prefixed"),
    [
        ("kiw", "kiw"),  # searched as it is typed: "kiw" finds "kiwis"
        ("deploy kiw", "kiw"),  # the last word only: the ones before it were finished
        ("kiwi or bana", "bana"),
        ('say "kiw"', None),  # a quoted word matches as written
        ("kiwi -bana", None),  # an excluded word too
        ("kiwi !!!", None),  # the last token has no word in it
    ],
)
def test_the_last_word_typed_also_matches_as_the_start_of_a_word(raw, prefixed):
    terms = [term for group in parse(raw).groups for term in group]
    assert [term.text for term in terms if term.prefix] == ([prefixed] if prefixed else [])


def test_the_postgresql_expression_says_what_the_text_says():
    assert tsquery(parse('deploy  "blue green" -canary rollout or rollb')) == (
        "('deploy') & (('blue' <-> 'green')) & ('rollout' | 'rollb':*) & !'canary'"
    )


@pytest.mark.parametrize(
    "raw",
    ["a & b", "x | !y", "a <-> b", "a:* b:A", "(a", "it's", "back\\slash'", "'quoted'", "a:*", "x:AB & !z"],
)
def test_tsquery_syntax_typed_by_a_user_is_only_ever_words(raw):
    # Every word is inside single quotes (a quote inside doubled): PostgreSQL reads no
    # operator, weight or prefix from what was typed; the only ones are the expression's.
    flat = tsquery(parse(raw)).replace("''", "")
    outside = "".join(flat.split("'")[0::2])
    assert set(outside.replace("(", " ").replace(")", " ").replace(":*", " :* ").split()) <= {"&", "|", ":*", "<->", "!"}
