"""Parsing an LLM answer: reasoning and code fences dropped, malformed answers refused."""

from __future__ import annotations

import json

import pytest

from llm_svc.llm_client import LlmFailure, parse_insights

ANSWER = {
    "insights": [
        {"title": "T", "text": "Rows: 10.", "evidence": ["dataset.rows"], "severity": "warning"}
    ]
}


def test_think_block_and_fences_are_removed() -> None:
    content = "<think>I think 42</think>\n```json\n" + json.dumps(ANSWER) + "\n```"
    (insight,) = parse_insights(content)
    assert insight.text == "Rows: 10." and insight.severity == "warning"


@pytest.mark.parametrize(
    "content",
    [
        "",
        "<think>only thinking</think>",
        "plain prose",
        "[]",
        '{"insights": []}',
        '{"insights": [{"title": 1}]}',
    ],
)
def test_unusable_answers_are_failures(content: str) -> None:
    with pytest.raises(LlmFailure):
        parse_insights(content)


def test_unknown_severity_becomes_info() -> None:
    answer = {"insights": [{"title": "T", "text": "x", "severity": "apocalyptic"}]}
    assert parse_insights(json.dumps(answer))[0].severity == "info"


def test_unclosed_think_block_is_all_reasoning() -> None:
    with pytest.raises(LlmFailure):
        parse_insights("<think>started reasoning " + json.dumps(ANSWER))


def test_prose_around_the_json_object_is_tolerated() -> None:
    (insight,) = parse_insights("Sure! Here it is:\n" + json.dumps(ANSWER) + "\nHope it helps.")
    assert insight.evidence == ["dataset.rows"]


def test_evidence_that_is_not_a_list_of_strings_is_ignored() -> None:
    answer = {
        "insights": [
            {"title": "A", "text": "a", "evidence": "dataset.rows"},
            {"title": "B", "text": "b", "evidence": ["dataset.rows", 3, None, " "]},
        ]
    }
    first, second = parse_insights(json.dumps(answer))
    assert first.evidence == [] and second.evidence == ["dataset.rows"]
