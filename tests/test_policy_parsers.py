"""Property tests of the instance-policy parsers (`tootlake.sources.policy`): whatever JSON
value or bytes a server sends as its rules, terms or privacy policy, the parsers return a
result and list the problems, never raise; and the topic flags are whole-word matches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tootlake.sources.policy import (
    MAX_RULES,
    RULE_TEXT_LIMIT,
    Rule,
    decode_json,
    flag_topics,
    parse_document,
    parse_rules,
    rules_sha256,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["id", "text", "hint", "content", "x"]) | st.text(),
            children,
            max_size=5,
        )
    ),  # fmt: skip
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_parse_rules_takes_any_json_value(body):
    rules, problems = parse_rules(body)
    assert all(isinstance(r, Rule) and isinstance(r.text, str) for r in rules)
    assert all(len(r.text) <= RULE_TEXT_LIMIT and len(r.hint) <= RULE_TEXT_LIMIT for r in rules)
    assert len(rules) <= MAX_RULES
    if not isinstance(body, list):
        assert rules == [] and problems
    else:
        bad = [i for i in body if not (isinstance(i, dict) and isinstance(i.get("text"), str))]
        assert len(problems) >= min(len(bad), 1) if bad else True
    assert len(rules_sha256(rules)) == 64


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_parse_document_takes_any_json_value(body):
    text, problems = parse_document(body, "terms")
    if text is None:
        assert problems
    else:
        assert "<" not in text or ">" not in text.split("<", 1)[1][:2000]


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_decode_json_takes_any_bytes(body):
    value, problems = decode_json(body, "rules")
    assert (value is None and problems) or not problems


def test_huge_and_many_rules_are_cut():
    body = [{"text": "x" * (RULE_TEXT_LIMIT * 3), "hint": 5}] * (MAX_RULES + 10)
    rules, problems = parse_rules(body)
    assert len(rules) == MAX_RULES and len(rules[0].text) == RULE_TEXT_LIMIT
    assert any("more than" in p for p in problems) and any(".hint" in p for p in problems)


def test_control_characters_are_taken_out_of_rules():
    (rule,), _ = parse_rules([{"text": "Be \x1b[31mkind\u202e", "hint": None}])
    assert rule.text == "Be [31mkind" and rule.hint == ""


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_flag_topics_takes_any_text(text):
    flags = flag_topics([text])
    for words in flags.values():
        assert all(w in text for w in words) and len(words) <= 5


def test_flags_are_whole_words_case_insensitive_and_multilingual():
    assert flag_topics(["We research things"]) == {"research": ["research"]}
    assert flag_topics(["RESEARCH is banned"]) == {"research": ["RESEARCH"]}
    assert flag_topics(["Keine Forschung, kein Scraping"]) == {
        "research": ["Forschung"],
        "scraping": ["Scraping"],
    }
    assert flag_topics(["Pas de robots; aucun archivage"]) == {"archiving": ["archivage"]}
    assert flag_topics(["Training AI models on posts is forbidden"])["ai"]
    assert flag_topics(["KI-Training verboten"]) == {"ai": ["KI"]}
    assert flag_topics(["研究目的での収集を禁止します"]) == {"research": ["研究"]}
    # not inside other words, and "ai" in Italian is not AI
    assert flag_topics(["Robots, abbots, scrapbooks, available, ai amici"]) == {}
