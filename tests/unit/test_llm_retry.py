"""The LLM client's retry policy against a real fake server, with a fake clock: nothing sleeps."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from email.utils import formatdate
from typing import Any

import pytest

from devstack.processes import free_port
from llm_svc.llm_client import FailureKind, LlmAnswer, LlmClient, LlmFailure, prompt_messages
from llm_svc.settings import LlmSettings
from tests.support.fake_llm import FakeLlm, Reply, completion, drop, hang, insights_reply

REPORT = {"dataset": {"rows": 10}}
GOOD = insights_reply(
    {"title": "Rows", "text": "10 rows.", "evidence": ["dataset.rows"], "severity": "info"}
)
WALL_START = 1_700_000_000.0


class FakeTime:
    """A monotonic and a wall clock that only move when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = WALL_START
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall_clock(self) -> float:
        return self.wall

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.wall += seconds


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLlm]:
    fake = FakeLlm().start()
    yield fake
    fake.stop()


@pytest.fixture()
def clock() -> FakeTime:
    return FakeTime()


def _settings(base_url: str, **overrides: Any) -> LlmSettings:
    values: dict[str, Any] = {
        "openrouter_api_key": "sk-unit-0123456789",
        "llm_base_url": base_url,
        "llm_retry_attempts": 2,
        "retry_initial_delay": 0.5,
        "retry_factor": 2.0,
        "retry_max_delay": 10.0,
        "llm_min_attempt_seconds": 0.5,
        "llm_http_referer": "https://datapilot.example",
        "llm_x_title": "DataPilot",
        **overrides,
    }
    return LlmSettings(**values)


@pytest.fixture()
async def make_client(fake_llm: FakeLlm, clock: FakeTime) -> AsyncIterator[Any]:
    clients: list[LlmClient] = []

    def make(**overrides: Any) -> LlmClient:
        base_url = overrides.pop("base_url", fake_llm.base_url)
        client = LlmClient(
            _settings(base_url, **overrides),
            clock=clock.monotonic,
            wall_clock=clock.wall_clock,
            sleep=clock.sleep,
            uniform=lambda low, high: high,  # the jitter's upper end: x1.1
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def _fail(client: LlmClient, clock: FakeTime, budget: float = 60.0) -> LlmFailure:
    with pytest.raises(LlmFailure) as info:
        await client.generate(REPORT, clock.now + budget)
    return info.value


@pytest.mark.parametrize(
    ("status", "attempts", "sleeps"),
    [
        (500, 2, [0.55]),
        (502, 2, [0.55]),
        (503, 2, [0.55]),
        (504, 2, [0.55]),
        (429, 2, [0.55]),
        (401, 2, [0.55]),
        (403, 2, [0.55]),
        (400, 1, []),
        (404, 1, []),
        (422, 1, []),
    ],
)
async def test_status_classification_attempts_and_delays(
    fake_llm: FakeLlm,
    clock: FakeTime,
    make_client: Any,
    status: int,
    attempts: int,
    sleeps: list[float],
) -> None:
    fake_llm.script(Reply(status, {"error": {"message": "scripted"}}))
    failure = await _fail(make_client(), clock)
    assert len(fake_llm.requests) == attempts == failure.attempts
    assert clock.sleeps == pytest.approx(sleeps)


async def test_backoff_follows_the_formula_up_to_max_delay(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    fake_llm.script(Reply(503, {}))
    failure = await _fail(make_client(llm_retry_attempts=5, retry_max_delay=1.5), clock)
    assert failure.attempts == 5 and failure.kind is FailureKind.TRANSIENT
    # min(max_delay, initial * factor^(attempt-1)) * 1.1
    assert clock.sleeps == pytest.approx([0.55, 1.1, 1.65, 1.65])


async def test_auth_errors_are_retried_only_once(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    fake_llm.script(Reply(401, {}), Reply(403, {}), Reply(500, {}))
    failure = await _fail(make_client(llm_retry_attempts=5), clock)
    assert failure.attempts == 2 and failure.status == 403
    assert len(fake_llm.requests) == 2


async def test_transient_failure_then_success(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    fake_llm.script(Reply(502, {}), GOOD)
    answer = await make_client().generate(REPORT, clock.now + 60)
    assert isinstance(answer, LlmAnswer) and answer.attempts == 2
    assert [d.text for d in answer.drafts] == ["10 rows."]


@pytest.mark.parametrize(
    ("headers", "sleep"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"Retry-After": "120"}, 10.0),  # capped by RETRY_MAX_DELAY
        ({"Retry-After": formatdate(WALL_START + 7, usegmt=True)}, 7.0),
        ({"Retry-After": formatdate(WALL_START - 60, usegmt=True)}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "soon"}, 0.55),  # unparsable: the backoff delay
    ],
)
async def test_retry_after_is_honoured(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any, headers: dict[str, str], sleep: float
) -> None:
    fake_llm.script(Reply(429, {"error": "slow down"}, headers), GOOD)
    answer = await make_client().generate(REPORT, clock.now + 60)
    assert answer.attempts == 2
    assert clock.sleeps == pytest.approx([sleep], abs=1.0 if "GMT" in str(headers) else 1e-9)


async def test_no_sleep_that_cannot_finish_before_the_deadline(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    fake_llm.script(Reply(429, {}, {"Retry-After": "5"}))
    failure = await _fail(make_client(), clock, budget=4.0)
    assert failure.attempts == 1 and clock.sleeps == []
    fake_llm.script(Reply(500, {}))
    # 0.55 s of backoff + 0.5 s minimum attempt do not fit in 1 s.
    failure = await _fail(make_client(), clock, budget=1.0)
    assert failure.attempts == 1 and clock.sleeps == []


async def test_no_attempt_without_time_left(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    fake_llm.script(GOOD)
    failure = await _fail(make_client(), clock, budget=0.4)
    assert failure.attempts == 0 and failure.counts is False
    assert fake_llm.requests == []


@pytest.mark.parametrize(
    ("reply", "attempts"),
    [
        (Reply(200, raw=b"{not json"), 1),
        (Reply(200, {"choices": []}), 1),
        (completion(""), 1),
        (completion("<think>only reasoning, no answer</think>"), 1),
        (completion("<think>cut off reasoning without an end"), 1),
        (completion("The revenue looks fine."), 1),
        (completion('{"insights": []}'), 1),
        (completion("", reasoning=json.dumps({"insights": [{"title": "t", "text": "x"}]})), 1),
        (Reply(200, {"error": {"message": "upstream", "code": 400}}), 1),
        (Reply(200, {"error": {"message": "upstream overloaded", "code": 502}}), 2),
        (Reply(200, {"error": {"message": "rate", "code": 429}}), 2),
    ],
    ids=[
        "malformed-json",
        "no-choices",
        "empty-content",
        "think-only",
        "unclosed-think",
        "prose",
        "no-insights",
        "answer-only-in-reasoning",
        "error-body-400",
        "error-body-502",
        "error-body-429",
    ],
)
async def test_unusable_answers_are_failures(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any, reply: Reply, attempts: int
) -> None:
    fake_llm.script(reply)
    failure = await _fail(make_client(), clock)
    assert failure.attempts == attempts == len(fake_llm.requests)


async def test_reasoning_is_never_used_and_prose_around_json_is_tolerated(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    answer = {"insights": [{"title": "Rows", "text": "10 rows.", "evidence": ["dataset.rows"]}]}
    fake_llm.script(
        completion(
            "<think>maybe 999 rows</think>Here you go:\n```json\n" + json.dumps(answer) + "\n```",
            reasoning="The user wants 777 insights",
        )
    )
    result = await make_client().generate(REPORT, clock.now + 60)
    assert [(d.title, d.text, d.evidence) for d in result.drafts] == [
        ("Rows", "10 rows.", ["dataset.rows"])
    ]


@pytest.mark.parametrize("fault", ["drop", "refused"])
async def test_network_errors_are_retried(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any, fault: str
) -> None:
    if fault == "drop":
        fake_llm.script(drop(), GOOD)
        answer = await make_client().generate(REPORT, clock.now + 60)
        assert answer.attempts == 2 and clock.sleeps == pytest.approx([0.55])
    else:
        client = make_client(base_url=f"http://127.0.0.1:{free_port()}/v1")
        failure = await _fail(client, clock)
        assert failure.attempts == 2 and failure.kind is FailureKind.TRANSIENT


async def test_request_shape_headers_and_json_mode(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    fake_llm.script(GOOD)
    await make_client().generate(REPORT, clock.now + 60)
    (request,) = fake_llm.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == "Bearer sk-unit-0123456789"
    assert headers["http-referer"] == "https://datapilot.example"
    assert headers["x-title"] == "DataPilot"
    body = request["body"]
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"] == prompt_messages(REPORT)
    assert json.loads(body["messages"][1]["content"].split("\n", 1)[1])["summary"] == {"rows": 10}


async def test_endpoint_refusing_response_format_is_asked_again_without_it(
    fake_llm: FakeLlm, clock: FakeTime, make_client: Any
) -> None:
    refusal = Reply(400, {"error": {"message": "response_format is not supported"}})
    fake_llm.script(refusal, GOOD)
    client = make_client()
    answer = await client.generate(REPORT, clock.now + 60)
    assert answer.attempts == 1 and clock.sleeps == []
    first, second = fake_llm.requests
    assert "response_format" in first["body"] and "response_format" not in second["body"]
    fake_llm.script(GOOD)
    await client.generate(REPORT, clock.now + 60)
    assert "response_format" not in fake_llm.requests[0]["body"]


async def test_a_hang_is_cut_at_the_deadline_and_the_connection_closed(
    fake_llm: FakeLlm, make_client: Any
) -> None:
    """Real time here: the attempt's timeout is the deadline (0.3 s).

    Uncut, the call would hang until the test's timeout; cut, the one request it made is
    dropped by the client (the fake server sees the disconnect).
    """
    fake_llm.script(hang())
    client = LlmClient(_settings(fake_llm.base_url, llm_min_attempt_seconds=0.1))
    try:
        with pytest.raises(LlmFailure) as info:
            await client.generate(REPORT, time.monotonic() + 0.3)
    finally:
        await client.aclose()
    assert info.value.kind is FailureKind.TRANSIENT and info.value.attempts == 1
    assert len(fake_llm.requests) == 1
    fake_llm.wait_disconnects(1, timeout=2)
