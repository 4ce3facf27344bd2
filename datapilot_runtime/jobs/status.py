"""The job states of the `datapilot.common.v1.JobStatus` enum, their one source.

A state's name is its proto name without the `JOB_STATUS_` prefix, lower case: the form stored
in Redis, written by the Lua scripts and shown to REST clients. The mapping to the proto is made
by name and checked at import, so the enum below cannot drift from the proto.
"""

from __future__ import annotations

import enum
from typing import cast

from datapilot.common.v1 import common_pb2

_PREFIX = "JOB_STATUS_"


class Status(enum.StrEnum):
    """The job states; the last three are terminal and never change again."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def proto(self) -> common_pb2.JobStatus:
        return STATUS_TO_PROTO[self]


ACTIVE = (Status.QUEUED, Status.PROCESSING)
TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
# Status(...) raises at import for a proto state that Status lacks; the check below, the converse.
PROTO_TO_STATUS: dict[int, Status] = {
    number: Status(name.removeprefix(_PREFIX).lower())
    for name, number in common_pb2.JobStatus.items()
    if number != common_pb2.JOB_STATUS_UNSPECIFIED
}
STATUS_TO_PROTO: dict[Status, common_pb2.JobStatus] = {
    status: cast(common_pb2.JobStatus, number) for number, status in PROTO_TO_STATUS.items()
}
if len(STATUS_TO_PROTO) != len(Status):
    raise ImportError("Status has a state that datapilot.common.v1.JobStatus lacks")
STATUS_NAMES = tuple(status.value for status in Status)


def status_name(number: int) -> str:
    """The REST name of a proto status number ('unknown' for one this build does not know)."""
    status = PROTO_TO_STATUS.get(number)
    return status.value if status is not None else "unknown"
