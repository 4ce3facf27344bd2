"""`make run`: the whole system in the foreground on its embedded defaults; Ctrl-C stops it."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from datapilot_runtime.logs import configure_logging
from devstack.processes import REPO_ROOT
from devstack.stack import Stack, StackConfig

_LOGGER = logging.getLogger("devstack")

_BANNER = """
DataPilot is running.
  gateway:  {url}
  API docs: {url}/docs
  run data: {run_dir}

Try it:
  curl -s -F file=@tests/data/sales.csv {url}/api/upload
  curl -s '{url}/api/job-status?jobId=<jobId from the answer>'
  curl -s {url}/api/jobs/<jobId>/result

Ctrl-C stops every process.
"""


def main() -> int:
    configure_logging("runner", os.environ.get("LOG_LEVEL", "INFO"))
    run_dir = Path(os.environ.get("DATAPILOT_RUN_DIR", REPO_ROOT / ".run"))
    config = StackConfig(
        run_dir=run_dir,
        redis_url=os.environ.get("REDIS_URL", ""),
        gateway_host=os.environ.get("GATEWAY_HOST", "127.0.0.1"),
        gateway_port=int(os.environ.get("GATEWAY_PORT", "8080")),
        logs_to_files=False,
        workers=int(os.environ.get("WORKER_PROCESSES", "2")),
    )
    # The handler does nothing: the C-level handler writes the signal's number to `wakeup`, which
    # the main thread reads. (Setting a threading.Event from a handler can deadlock: the handler
    # runs on the main thread, possibly while it is inside that event's own wait().)
    wakeup, notify = os.pipe()
    os.set_blocking(notify, False)
    signal.set_wakeup_fd(notify)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    stack = Stack(config)
    try:
        stack.start()
    except (RuntimeError, TimeoutError) as exc:
        _LOGGER.error("start-up failed: %s", exc)
        stack.stop()
        return 1
    sys.stderr.write(_BANNER.format(url=stack.gateway_url, run_dir=run_dir))
    stack.supervise()
    received = os.read(wakeup, 1)  # blocks until SIGINT or SIGTERM (or came during start-up)
    _LOGGER.info("%s: stopping every process", signal.Signals(received[0]).name)
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
