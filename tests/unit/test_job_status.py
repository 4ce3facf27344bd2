"""Job states come from the JobStatus proto enum: one spelling for the store, proto and REST."""

from __future__ import annotations

import re

from datapilot.common.v1 import common_pb2

from datapilot_runtime.jobs.status import (
    ACTIVE,
    PROTO_TO_STATUS,
    STATUS_NAMES,
    TERMINAL,
    Status,
    status_name,
)
from gateway.job_json import STATUS_BY_NAME, STATUS_PATTERN


def test_every_proto_state_is_a_status_and_back() -> None:
    proto_names = {
        name.removeprefix("JOB_STATUS_").lower()
        for name, _number in common_pb2.JobStatus.items()
        if name != "JOB_STATUS_UNSPECIFIED"
    }
    assert set(STATUS_NAMES) == proto_names
    for status in Status:
        assert common_pb2.JobStatus.Name(status.proto) == "JOB_STATUS_" + status.name
        assert PROTO_TO_STATUS[status.proto] is status
        assert status_name(status.proto) == status.value


def test_unknown_numbers_and_the_unspecified_state_have_no_name() -> None:
    assert status_name(common_pb2.JOB_STATUS_UNSPECIFIED) == "unknown"
    assert status_name(99) == "unknown"


def test_terminal_and_active_split_the_states() -> None:
    assert set(ACTIVE) | set(TERMINAL) == set(Status)
    assert not set(ACTIVE) & set(TERMINAL)
    assert all(s.terminal for s in TERMINAL) and not any(s.terminal for s in ACTIVE)


def test_gateway_filter_accepts_exactly_the_states() -> None:
    pattern = re.compile(STATUS_PATTERN)
    assert all(pattern.match(name) for name in STATUS_NAMES)
    assert not pattern.match("unknown") and not pattern.match("queued|failed")
    assert {name: Status(name).proto for name in STATUS_NAMES} == STATUS_BY_NAME
