"""A run of failures logged as one story: when it began, how much it cost, when it ended.

A dependency that is down fails every micro-batch: a Redis outage of 10 s wrote two
warnings per batch (109 lines), and nothing said when it was over. An :class:`Outage`
logs the first failure at once, then a sum at most every ``every_s``, and one line once
batches have gone through for ``every_s`` without a failure: sporadic failures (a batch
missing its latency budget now and then, under load) are one outage, not two lines each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Outage"]


class Outage:
    def __init__(
        self,
        log: logging.Logger,
        *,
        what: str,
        lost: str,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log, self._what, self._lost = log, what, lost  # e.g. "decisions degraded"
        self._every_s, self._clock = every_s, clock
        self._began: float | None = None
        self._logged_at = self._failed_at = 0.0
        self._count = self._batches = 0  # since the outage began
        self._unlogged = 0  # since the last line

    @property
    def ongoing(self) -> bool:
        return self._began is not None

    def failed(self, count: int, reason: object) -> None:
        """A batch of ``count`` failed because of ``reason``."""
        now = self._failed_at = self._clock()
        self._count += count
        self._batches += 1
        if self._began is None:
            self._began = self._logged_at = now
            self._log.warning(
                "%s: %d %s (%s); until it recovers, one line every %.0f s",
                self._what, count, self._lost, reason, self._every_s,
            )  # fmt: skip
            return
        self._unlogged += count
        if now - self._logged_at >= self._every_s:
            self._log.warning(
                "%s for %.0f s: %d more %s since the last line (%s)",
                self._what, now - self._began, self._unlogged, self._lost, reason,
            )  # fmt: skip
            self._logged_at, self._unlogged = now, 0

    def succeeded(self) -> None:
        """A batch went through: an outage ends once none failed for ``every_s``."""
        if self._began is None or self._clock() - self._failed_at < self._every_s:
            return
        batches = f"{self._batches} batch{'es' if self._batches != 1 else ''}"
        self._log.warning(
            "%s: over; %d %s in %s from the first failure to the last (%.1f s)",
            self._what, self._count, self._lost, batches, self._failed_at - self._began,
        )  # fmt: skip
        self._began, self._count, self._batches, self._unlogged = None, 0, 0, 0
