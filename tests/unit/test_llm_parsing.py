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
