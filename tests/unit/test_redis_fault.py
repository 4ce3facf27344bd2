"""What counts as a Redis failure: RedisError, and whatever is raised while redis-py runs."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from datapilot_runtime.error_codes import ErrorCode
from datapilot_runtime.redis_client import redis_fault
from ingest_svc.servicer import store_fault


async def _redis_py_lost_writer() -> AttributeError:
    """The error redis-py 8.1 raises when a connection's writer went to a concurrent disconnect."""
    connection = Connection()  # never connected: no writer, as after that disconnect
    with pytest.raises(AttributeError) as raised:
        await connection._send_packed_command([b"PING"])
    return raised.value


async def test_redis_pys_attribute_error_is_a_redis_fault() -> None:
    error = await _redis_py_lost_writer()
    assert redis_fault(error)
    fault = store_fault("/datapilot.ingest.v1.IngestService/Download", error)
    assert fault is not None and fault.error_code is ErrorCode.STORE_UNAVAILABLE


def test_our_own_attribute_errors_are_not() -> None:
    with pytest.raises(AttributeError) as raised:
        _ = object().missing  # type: ignore[attr-defined]
    assert not redis_fault(raised.value)
    assert store_fault("/datapilot.ingest.v1.IngestService/Download", raised.value) is None
    assert not redis_fault(AttributeError("never raised"))


def test_redis_errors_are() -> None:
    assert redis_fault(RedisConnectionError("gone"))


async def test_a_socket_error_escaping_redis_py_is_a_redis_fault() -> None:
    connection = Connection(host="127.0.0.1", port=1)  # nothing listens: refused
    with pytest.raises(Exception) as raised:
        await connection._connect()  # type: ignore[no-untyped-call]  # the raw socket call
    assert isinstance(raised.value, OSError)
    assert redis_fault(raised.value)
    assert not redis_fault(OSError("raised by us, redis-py not on the stack"))
