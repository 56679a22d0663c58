"""Retraining on a fixed interval, until SIGTERM/SIGINT.

A failed run is logged and retried at the next tick; it never ends the schedule.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

__all__ = ["run_every"]

log = logging.getLogger(__name__)


def run_every(
    interval_s: float, job: Callable[[], None], *, stop: threading.Event | None = None
) -> int:
    """Run ``job`` now and then every ``interval_s``; return how many runs succeeded."""
    if interval_s <= 0:
        raise ValueError(f"interval {interval_s!r}s must be > 0, e.g. --every 24h")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    succeeded = 0
    next_run = time.monotonic()
    while not stop.is_set():
        try:
            job()
            succeeded += 1
        except Exception:
            log.exception("scheduled training run failed; retrying at the next tick")
        next_run += interval_s
        stop.wait(max(0.0, next_run - time.monotonic()))
    return succeeded
