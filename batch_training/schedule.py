"""Retraining on a fixed interval, until SIGTERM/SIGINT; single runs stop on them too.

A failed run is logged and retried at the next tick; it never ends the schedule. A lock
file (``flock``) makes sure two runs never overlap, even from two schedulers: a tick that
finds the lock held is skipped. A stop request ends the wait between runs at once; a run
in progress ends at its next :func:`check_stop`, which the job calls where it reports
progress (a second SIGINT/SIGTERM ends the process at once).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from batch_training.errors import BatchTrainingError, TrainingConfigError
from feature_store.errors import FeatureStoreError
from feature_store.locking import exclusive, lock_holder

__all__ = [
    "RunCancelled",
    "check_stop",
    "run_every",
    "stop_on_signals",
]

log = logging.getLogger(__name__)


class RunCancelled(Exception):
    """A stop was requested while a run was in progress."""


def check_stop(stop: threading.Event) -> None:
    """Raise :class:`RunCancelled` if ``stop`` is set: call it where a run reports progress."""
    if stop.is_set():
        raise RunCancelled("stop requested")


def run_every(
    interval_s: float,
    job: Callable[[], None],
    *,
    lock_path: Path | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run ``job`` now and then every ``interval_s``; return how many runs succeeded.

    A run longer than the interval delays the next tick; missed ticks are not caught up.
    """
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise TrainingConfigError(f"interval {interval_s!r}s must be > 0, e.g. --every 24h")
    stop = stop or threading.Event()
    with stop_on_signals(stop):
        return _ticks(interval_s, job, lock_path, stop)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM or SIGINT sets ``stop`` and a second one ends the process at
    once (handlers are only installed on the main thread; the previous ones come back)."""
    previous = {}
    if threading.current_thread() is threading.main_thread():

        def request_stop(signum: int, _: object) -> None:
            # set from another thread: the handler may interrupt this one inside the
            # event's own lock (in stop.wait), and Event.set takes that lock
            threading.Thread(target=stop.set, daemon=True).start()
            signal.signal(signum, signal.SIG_DFL)  # the next one ends the process at once

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ticks(
    interval_s: float, job: Callable[[], None], lock_path: Path | None, stop: threading.Event
) -> int:
    succeeded = 0
    next_run = time.monotonic()
    while True:  # the first tick runs at once, even if a stop is already requested
        try:
            with exclusive(lock_path) if lock_path else contextlib.nullcontext(True) as mine:
                if mine:
                    job()
                    succeeded += 1
                elif lock_path is not None:  # only a lock can be taken by another run
                    holder = lock_holder(lock_path, "another training run")
                    log.warning("%s holds %s; skipping this tick", holder, lock_path)
        except RunCancelled:
            log.warning("training run cancelled by a stop request; nothing was promoted")
            return succeeded
        # these say what to fix (a missing history: its path and how to make one)
        except (BatchTrainingError, FeatureStoreError, FileNotFoundError) as exc:
            log.error("scheduled training run failed: %s; retrying at the next tick", exc)
        except Exception:  # the lock file too: an unavailable mount may come back
            log.exception("scheduled training run failed; retrying at the next tick")
        next_run = max(next_run + interval_s, time.monotonic())
        if stop.wait(max(0.0, next_run - time.monotonic())):
            log.warning("training schedule stopped by a stop request between runs")
            return succeeded
