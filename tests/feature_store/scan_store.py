"""The test oracle: an online store that scans every window of every event.

The stores keep running window state; this one recomputes each aggregate from the
entity's whole log, the plainest reading of the online semantics (the store of the first
release), so a bug in the state bookkeeping shows up as a difference.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from feature_store.online.base import LATENESS_MS, EntityRequest, LabelUpdate, party_hash
from feature_store.plan import AggSpec, EntityPlan

__all__ = ["ScanStore"]


@dataclass(slots=True)
class _Log:
    """One entity's events sorted by (time, member), as a Redis sorted set orders them."""

    keys: list[tuple[int, str]] = field(default_factory=list)
    frauds: dict[str, tuple[int, int]] = field(default_factory=dict)  # tx -> (ts, label ts)

    def remove(self, ts_ms: int, member: str) -> None:
        i = bisect.bisect_left(self.keys, (ts_ms, member))
        if i < len(self.keys) and self.keys[i] == (ts_ms, member):
            del self.keys[i]

    def trim(self, before_ms: int) -> None:
        cut = bisect.bisect_left(self.keys, (before_ms, ""))
        if cut:
            del self.keys[:cut]
        for tx in [tx for tx, (ts, _) in self.frauds.items() if ts < before_ms]:
            del self.frauds[tx]


def _member(request: EntityRequest) -> str:
    # the counterparty is kept as its hash, exactly as the Redis store keeps it
    return f"{request.transaction_id}|{request.amount!r}|{party_hash(request.counterparty_id)}"


def _aggregate(
    spec: AggSpec,
    ts: int,
    scanned: list[tuple[int, float, str]],
    counterparty: str,
    count_in: int,
    frauds: dict[str, tuple[int, int]],
) -> float:
    lo, hi = ts - spec.lo_ms, ts - spec.hi_ms
    if spec.kind == "count":
        return float(count_in)
    if spec.kind == "fraud":
        return float(
            sum(1 for f_ts, f_label in frauds.values() if lo < f_ts <= hi and f_label <= ts)
        )
    inside = [e for e in scanned if lo < e[0] <= hi]
    if spec.kind == "sum":
        return math.fsum(e[1] for e in inside)
    if spec.kind == "sumsq":
        return math.fsum(e[1] * e[1] for e in inside)
    if spec.kind == "max":
        return max((e[1] for e in inside), default=math.nan)
    if spec.kind == "distinct":
        return float(len({e[2] for e in inside}))
    if spec.kind == "seen":
        return float(any(e[2] == counterparty for e in inside))
    return float(max((e[0] for e in inside), default=math.nan))  # last_ts


class ScanStore:
    def __init__(self) -> None:
        self._logs: dict[tuple[str, str], _Log] = {}
        self._transactions: dict[str, tuple[int, list[tuple[str, str]], int]] = {}
        self._expiry: deque[tuple[int, str]] = deque()

    async def read_update_batch(
        self, plans: Sequence[EntityPlan], requests: Sequence[EntityRequest]
    ) -> np.ndarray:
        width = max((len(p.aggs) for p in plans), default=0)
        out = np.full((len(requests), width), np.nan)
        for row, request in enumerate(requests):
            plan = plans[request.plan]
            values = self._read_update(plan, request)
            out[row, : len(values)] = values
        return out

    def _read_update(self, plan: EntityPlan, request: EntityRequest) -> list[float]:
        key = (plan.entity, request.entity_id)
        log = self._logs.get(key)
        ts = request.ts_ms
        if log is None:
            log = self._logs[key] = _Log()
        member = _member(request)
        log.remove(ts, member)  # a redelivery must not see itself
        log.trim(ts - plan.horizon_ms - LATENESS_MS)
        scanned: list[tuple[int, float, str]] = []
        if plan.scan_lo_ms:
            lo = bisect.bisect_right(log.keys, (ts - plan.scan_lo_ms, "\U0010ffff"))
            hi = bisect.bisect_right(log.keys, (ts, "\U0010ffff"))
            for entry_ts, entry in log.keys[lo:hi]:
                _, amount, party = entry.split("|", 2)
                scanned.append((entry_ts, float(amount), party))
        values = []
        for spec in plan.aggs:
            count_in = 0
            if spec.kind == "count":
                lo = bisect.bisect_right(log.keys, (ts - spec.lo_ms, "\U0010ffff"))
                hi = bisect.bisect_right(log.keys, (ts - spec.hi_ms, "\U0010ffff"))
                count_in = hi - lo
            values.append(
                _aggregate(
                    spec,
                    ts,
                    scanned,
                    str(party_hash(request.counterparty_id)),
                    count_in,
                    log.frauds,
                )
            )
        bisect.insort(log.keys, (ts, member))
        if plan.needs_labels:
            self._remember(request.transaction_id, ts, key, ts + plan.horizon_ms)
        return values

    def _remember(self, transaction_id: str, ts: int, key: tuple[str, str], until: int) -> None:
        """Which entities a later label must reach; forgotten once no window needs it."""
        known = self._transactions.get(transaction_id)
        keys = [] if known is None else [k for k in known[1] if k != key]
        self._transactions[transaction_id] = (ts, [*keys, key], until)
        self._expiry.append((until + LATENESS_MS, transaction_id))
        while self._expiry and self._expiry[0][0] < ts - LATENESS_MS:
            _, old = self._expiry.popleft()
            entry = self._transactions.get(old)
            if entry is not None and entry[2] + LATENESS_MS < ts - LATENESS_MS:
                del self._transactions[old]

    async def apply_labels(self, plans: Sequence[EntityPlan], labels: Sequence[LabelUpdate]) -> int:
        matched = 0
        for label in labels:
            known = self._transactions.get(label.transaction_id)
            if known is None:
                continue
            matched += 1
            ts, keys, _ = known
            for key in keys:
                log = self._logs.get(key)
                if log is None:
                    continue
                if label.is_fraud:
                    log.frauds[label.transaction_id] = (ts, label.label_ts_ms)
                else:
                    log.frauds.pop(label.transaction_id, None)
        return matched

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
