"""In-memory online store: the embedded default, same semantics as the Redis store."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from feature_store.online.base import LATENESS_MS, EntityEvent, History, LogEntry

__all__ = ["MemoryOnlineStore"]


class _EntityLog:
    __slots__ = ("entries", "ids", "keys")

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []
        self.keys: list[tuple[int, str]] = []  # (ts, id): the sort order Redis uses for ties
        self.ids: set[str] = set()


class MemoryOnlineStore:
    def __init__(self) -> None:
        self._logs: dict[str, _EntityLog] = {}

    async def read_update_batch(self, events: Sequence[EntityEvent]) -> list[History]:
        return [self._read_update(event) for event in events]

    def _read_update(self, event: EntityEvent) -> History:
        log = self._logs.get(event.key)
        if log is None:
            log = self._logs[event.key] = _EntityLog()
        self._trim(log, event.ts_ms - event.horizon_ms - LATENESS_MS)
        lo = bisect.bisect_left(log.keys, (event.ts_ms - event.horizon_ms, ""))
        hi = bisect.bisect_right(log.keys, (event.ts_ms, "\U0010ffff"))
        history = log.entries[lo:hi]
        if event.transaction_id not in log.ids:
            key = (event.ts_ms, event.transaction_id)
            at = bisect.bisect_right(log.keys, key)
            log.keys.insert(at, key)
            log.entries.insert(at, LogEntry(event.ts_ms, event.transaction_id, event.amount))
            log.ids.add(event.transaction_id)
        return history

    @staticmethod
    def _trim(log: _EntityLog, before_ms: int) -> None:
        cut = bisect.bisect_left(log.keys, (before_ms, ""))
        if cut:
            for entry in log.entries[:cut]:
                log.ids.discard(entry.transaction_id)
            del log.entries[:cut], log.keys[:cut]

    def entity_count(self) -> int:
        return len(self._logs)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
