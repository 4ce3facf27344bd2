"""glibc malloc tuning for the processes that relay uploads: keep freed buffers for reuse."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

_LOGGER = logging.getLogger(__name__)
# mallopt parameters (glibc malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# An upload passes through buffers of 256 KiB-1 MiB (body chunks, chunk messages). By default
# glibc maps such blocks afresh and hands freed memory straight back to the kernel, so every
# buffer's pages fault in again: about two page faults per 4 KiB relayed, a third of the
# gateway's and ingest's CPU in a 20 MiB upload. Blocks under MMAP come from the heap, and the
# heap is only trimmed once more than TRIM is free at its top, so the next buffers reuse warm
# pages. S3 parts (5 MiB) stay mapped: kept on the heap, four per upload, they raised ingest's
# peak memory by more than they saved.
MMAP_THRESHOLD_BYTES = 1024 * 1024
TRIM_THRESHOLD_BYTES = 8 * 1024 * 1024
# Set by an operator, glibc's own variables win over ours.
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def retain_freed_memory() -> bool:
    """Apply the thresholds above (glibc only); True if they were applied."""
    if any(name in os.environ for name in _GLIBC_VARIABLES):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # not glibc (musl has no mallopt to speak of)
        return False
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not applied:
        _LOGGER.info("malloc thresholds not applied (not glibc?)")
    return applied
