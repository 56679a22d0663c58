"""How the worker process stops: a deadline on faust's stop, thread errors in the log,
and a readiness file that is there only while the worker is.

With the broker unreachable, aiokafka's ``stop()`` raises CancelledError from a fetch that
was backing off (aio-libs/aiokafka#647): faust's consumer thread dies there, printed a raw
traceback, and the worker never exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faust

__all__ = ["FaustWorker", "log_thread_errors", "ready_file_removed"]

log = logging.getLogger(__name__)

# faust stops in about 4 s; a worker that did not stop by then will not
STOP_DEADLINE_S = 25.0


class FaustWorker(faust.Worker):
    """faust's worker, with a deadline on stopping: past it, the process exits 1. What
    it decided but did not commit is redelivered (at least once; the ledger keeps the
    decisions the same)."""

    def __init__(self, *args: Any, ready_file: Path | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ready_file = ready_file

    def _on_sigterm(self) -> None:
        _exit_unless_stopped_within(STOP_DEADLINE_S, self._ready_file)
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        _exit_unless_stopped_within(STOP_DEADLINE_S, self._ready_file)
        super()._on_sigint()


def _exit_unless_stopped_within(seconds: float, ready_file: Path | None) -> None:
    def give_up() -> None:
        log.error(
            "the worker did not stop within %.0f s of the stop request (is the broker "
            "unreachable?); exiting: uncommitted events are decided again on restart",
            seconds,
        )
        if ready_file is not None:  # os._exit skips ready_file_removed's cleanup
            ready_file.unlink(missing_ok=True)
        logging.shutdown()  # flush the handlers: os._exit does not
        os._exit(1)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True  # a worker that stops in time exits without waiting for it
    timer.start()


def log_thread_errors() -> None:
    """An exception that ends a thread goes to the log (formatted, card numbers redacted),
    not raw to stderr; the consumer thread's cancelled fetch at a stop during a broker
    outage is one line, not a traceback."""

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "a thread"
        if isinstance(args.exc_value, asyncio.CancelledError):
            log.warning("%s stopped with a Kafka fetch cancelled (broker unreachable?)", name)
            return
        if args.exc_type is SystemExit:
            return
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        log.error("%s ended with an error", name, exc_info=exc_info)  # type: ignore[arg-type]

    threading.excepthook = hook


@contextlib.contextmanager
def ready_file_removed(path: Path | None) -> Iterator[None]:
    """No readiness file before the worker is ready, nor after it stopped, however it
    stops: a restarted container keeps its /tmp, and a stale file said "healthy"."""
    if path is None:
        yield
        return
    path.unlink(missing_ok=True)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
