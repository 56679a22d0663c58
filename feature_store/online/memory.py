"""In-memory online store: the embedded default, the same semantics as the Redis store.

It follows the Redis script step for step: the log of each entity is the truth, and the
windows ending at t that need sums, maxima or counterparties keep running state that an
in-order event brings up to date by evicting what left each window. A late event, a
redelivery or an entity without state takes the slow path: a scan of the log.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from feature_store.online.base import LATENESS_MS, EntityRequest, LabelUpdate, party_hash
from feature_store.plan import LABEL_KINDS, RUN_KINDS, SCAN_KINDS, AggSpec, EntityPlan

__all__ = ["MemoryOnlineStore"]

# (time, transaction id, amount, counterparty hash), ordered by time
_Entry = tuple[int, str, float, int]


def _nadd(s: float, c: float, x: float) -> tuple[float, float]:
    """Neumaier-compensated add, so sums that also subtract stay exact to about an ulp."""
    t = s + x
    c += (s - t) + x if abs(s) >= abs(x) else (x - t) + s
    return t, c


@dataclass(slots=True)
class _Window:
    """Running aggregates of one entity's events in (T - span, T]."""

    span: int
    tracks_parties: bool
    count: int = 0
    total: float = 0.0
    total_c: float = 0.0
    squares: float = 0.0
    squares_c: float = 0.0
    top: float = math.nan
    parties: dict[int, int] = field(default_factory=dict)

    def add(self, amount: float, party: int) -> int:
        """Record an event; return how many of the window's events had its counterparty."""
        self.count += 1
        self.total, self.total_c = _nadd(self.total, self.total_c, amount)
        self.squares, self.squares_c = _nadd(self.squares, self.squares_c, amount * amount)
        if not amount <= self.top:  # also when top is NaN (empty window)
            self.top = amount
        if not self.tracks_parties:
            return 0
        before = self.parties.get(party, 0)
        self.parties[party] = before + 1
        return before

    def remove(self, amount: float, party: int) -> bool:
        """Forget an event; True if it may have been the maximum."""
        self.count -= 1
        self.total, self.total_c = _nadd(self.total, self.total_c, -amount)
        self.squares, self.squares_c = _nadd(self.squares, self.squares_c, -(amount * amount))
        if self.tracks_parties:
            left = self.parties[party] - 1
            if left:
                self.parties[party] = left
            else:
                del self.parties[party]
        if self.count == 0:
            self.total = self.total_c = self.squares = self.squares_c = 0.0
            self.top = math.nan
        return amount >= self.top


@dataclass(slots=True)
class _Log:
    """One entity: its events sorted by (time, id), its window state and its frauds."""

    entries: list[_Entry] = field(default_factory=list)
    times: list[int] = field(default_factory=list)  # entries' times: bisect on plain ints
    windows: list[_Window] | None = None
    spans: list[tuple[int, bool]] | None = None  # the plan windows was built for
    newest: int | None = None  # T, the time the window state is at
    # the entity's frauds: transaction id -> (time, label time, amount)
    frauds: dict[str, tuple[int, int, float]] = field(default_factory=dict)

    def upto(self, t: float) -> int:
        """Index just past the events with time <= t."""
        return bisect.bisect_right(self.times, t)

    def insert(self, entry: _Entry) -> None:
        i = bisect.bisect_right(self.times, entry[0])
        self.entries.insert(i, entry)
        self.times.insert(i, entry[0])

    def remove(self, entry: _Entry) -> bool:
        for i in range(bisect.bisect_left(self.times, entry[0]), self.upto(entry[0])):
            if self.entries[i] == entry:
                del self.entries[i]
                del self.times[i]
                return True
        return False

    def trim(self, before_ms: int) -> None:
        cut = bisect.bisect_left(self.times, before_ms)
        if cut:
            del self.entries[:cut]
            del self.times[:cut]
        if self.frauds:
            for tx in [tx for tx, (ts, _, _) in self.frauds.items() if ts < before_ms]:
                del self.frauds[tx]

    def advance(self, ts: int) -> None:
        """Bring every window from (T - w, T] to (ts - w, ts]; ts >= T."""
        if self.windows is None or self.newest is None:
            return
        for window in self.windows:
            if not window.count:
                continue
            cut = ts - window.span
            dirty = False
            for _, _, amount, party in self.entries[
                self.upto(self.newest - window.span) : self.upto(cut)
            ]:
                dirty |= window.remove(amount, party)
            if dirty and window.count:
                window.top = max(e[2] for e in self.entries[self.upto(cut) : self.upto(ts)])

    def rebuild(self, spans: list[tuple[int, bool]]) -> None:
        """The window state as of the newest event, from the log."""
        self.windows = [_Window(span, parties) for span, parties in spans]
        self.spans = spans
        self.newest = self.entries[-1][0] if self.entries else None
        if self.newest is None:
            return
        for ts, _, amount, party in self.entries[self.upto(self.newest - spans[-1][0]) :]:
            for window in self.windows:
                if ts > self.newest - window.span:
                    window.add(amount, party)


def _scanned(spec: AggSpec, ts: int, scanned: list[_Entry], party: int) -> float:
    lo, hi = ts - spec.lo_ms, ts - spec.hi_ms
    inside = [e for e in scanned if lo < e[0] <= hi]
    if spec.kind == "sum":
        return math.fsum(e[2] for e in inside)
    if spec.kind == "sumsq":
        return math.fsum(e[2] * e[2] for e in inside)
    if spec.kind == "max":
        return max((e[2] for e in inside), default=math.nan)
    if spec.kind == "distinct":
        return float(len({e[3] for e in inside}))
    if spec.kind == "seen":
        return float(any(e[3] == party for e in inside))
    return float(max((e[0] for e in inside), default=math.nan))  # last_ts


def _fraud_run(log: _Log, spec: AggSpec, ts: int) -> tuple[float, float]:
    """The latest run of frauds known at ``ts`` in (ts - lo, ts - hi]: its length and its
    first event's time. It begins after the newest event that is not one, and after every
    event at that event's time, so the order of simultaneous events never matters."""
    lo, hi = ts - spec.lo_ms, ts - spec.hi_ms
    floor, newest = log.upto(lo), log.upto(hi) - 1
    cut = lo
    for i in range(newest, floor - 1, -1):
        fraud = log.frauds.get(log.entries[i][1])
        if fraud is None or fraud[1] > ts:
            cut = log.times[i]
            break
    first = max(log.upto(cut), floor)
    length = newest + 1 - first
    return (float(length), float(log.times[first])) if length > 0 else (0.0, math.nan)


@dataclass(frozen=True, slots=True)
class _Compiled:
    """Per plan, worked out once: the stateful windows and how each aggregate is read."""

    plan: EntityPlan
    spans: list[tuple[int, bool]]  # (window, tracks counterparties), shortest first
    slots: list[int]  # per aggregate: its window's index + 1, or 0 if not from the state
    scan_lo: int  # how far back the slow path scans
    delayed_reach: int  # how far back the fast path scans: delayed windows only (0: none)
    keep: int  # how long an event stays in the log
    labels: bool

    @classmethod
    def of(cls, plan: EntityPlan) -> _Compiled:
        stateful = sorted(
            {a.lo_ms for a in plan.aggs if a.hi_ms == 0 and a.kind in SCAN_KINDS - {"last_ts"}}
        )
        party = {a.lo_ms for a in plan.aggs if a.hi_ms == 0 and a.kind in ("distinct", "seen")}
        slots = [
            stateful.index(a.lo_ms) + 1
            if a.hi_ms == 0 and a.lo_ms in stateful and a.kind not in LABEL_KINDS | {"last_ts"}
            else 0
            for a in plan.aggs
        ]
        delayed = [
            a.lo_ms
            for a, slot in zip(plan.aggs, slots, strict=True)
            if not slot and a.kind in SCAN_KINDS and not (a.kind == "last_ts" and a.hi_ms == 0)
        ]
        return cls(
            plan,
            [(w, w in party) for w in stateful],
            slots,
            plan.scan_lo_ms,
            max(delayed, default=0),
            plan.horizon_ms + LATENESS_MS,
            plan.needs_labels,
        )


class MemoryOnlineStore:
    def __init__(self) -> None:
        self._logs: dict[tuple[str, str], _Log] = {}
        # transaction id -> (time, amount, the entities a label reaches, kept until)
        self._transactions: dict[str, tuple[int, float, list[tuple[str, str]], int]] = {}
        self._expiry: deque[tuple[int, str]] = deque()
        self._compiled: dict[int, _Compiled] = {}  # by id(plan): hashing a plan is slow

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
        compiled = self._compiled.get(id(plan))
        if compiled is None or compiled.plan is not plan:
            compiled = self._compiled[id(plan)] = _Compiled.of(plan)
        key = (plan.entity, request.entity_id)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
        ts, party, amount = request.ts_ms, party_hash(request.counterparty_id), request.amount
        entry = (ts, request.transaction_id, amount, party)
        duplicate = log.remove(entry)  # a redelivery must not see itself
        stateful = bool(compiled.spans)
        if stateful and log.spans != compiled.spans:
            log.windows = None  # built for another feature set: rebuilt from the log below
            if not log.entries:
                log.rebuild(compiled.spans)  # a new entity: empty windows
        fast = (
            stateful
            and not duplicate
            and log.windows is not None
            and (log.newest is None or ts >= log.newest)
        )
        if fast:
            log.advance(ts)
        log.trim(ts - compiled.keep)
        scanned: list[_Entry] = []
        if compiled.scan_lo and not fast:
            scanned = log.entries[log.upto(ts - compiled.scan_lo) : log.upto(ts)]
        elif compiled.delayed_reach:  # the state answers the rest
            scanned = log.entries[log.upto(ts - compiled.delayed_reach) : log.upto(ts)]
        values: list[float] = []
        seen_at: list[tuple[int, int]] = []
        # per (lo, hi): the known frauds' amounts, and the run; each kind pair reads one
        known_in: dict[tuple[int, int], list[float]] = {}
        runs: dict[tuple[int, int], tuple[float, float]] = {}
        for spec, slot in zip(plan.aggs, compiled.slots, strict=True):
            value = math.nan
            if fast and slot and log.windows is not None:
                window = log.windows[slot - 1]
                if spec.kind == "count":
                    value = float(window.count)
                elif spec.kind == "sum":
                    value = window.total + window.total_c
                elif spec.kind == "sumsq":
                    value = window.squares + window.squares_c
                elif spec.kind == "max":
                    value = window.top
                elif spec.kind == "distinct":
                    value = float(len(window.parties))
                else:  # seen: filled in once the event is recorded
                    seen_at.append((len(values), slot - 1))
            elif fast and spec.kind == "last_ts" and spec.hi_ms == 0:
                newest = log.newest
                value = float(newest) if newest is not None and newest > ts - spec.lo_ms else value
            elif spec.kind == "count":
                value = float(log.upto(ts - spec.hi_ms) - log.upto(ts - spec.lo_ms))
            elif spec.kind in ("fraud", "fraud_amount"):
                bounds = (spec.lo_ms, spec.hi_ms)
                if bounds not in known_in:
                    lo, hi = ts - spec.lo_ms, ts - spec.hi_ms
                    known_in[bounds] = [
                        a
                        for f_ts, f_label, a in log.frauds.values()
                        if lo < f_ts <= hi and f_label <= ts
                    ]
                known = known_in[bounds]
                value = float(len(known)) if spec.kind == "fraud" else math.fsum(known)
            elif spec.kind in RUN_KINDS:
                bounds = (spec.lo_ms, spec.hi_ms)
                if bounds not in runs:
                    runs[bounds] = _fraud_run(log, spec, ts)
                length, first = runs[bounds]
                value = length if spec.kind == "run_length" else first
            else:
                value = _scanned(spec, ts, scanned, party)
            values.append(value)
        self._record(
            log, compiled, entry, fast=fast, duplicate=duplicate, seen_at=seen_at, values=values
        )
        if compiled.labels:
            self._remember(request.transaction_id, ts, amount, key, ts + plan.horizon_ms)
        return values

    @staticmethod
    def _record(
        log: _Log,
        compiled: _Compiled,
        entry: _Entry,
        *,
        fast: bool,
        duplicate: bool,
        seen_at: list[tuple[int, int]],
        values: list[float],
    ) -> None:
        ts, _, amount, party = entry
        if fast and log.windows is not None:
            before = [w.add(amount, party) for w in log.windows]
            for column, index in seen_at:
                values[column] = float(before[index] > 0)
            log.newest = ts
        elif not duplicate and log.windows is not None and log.newest is not None:
            for window in log.windows:  # late: it joins the windows it falls in
                if ts > log.newest - window.span:
                    window.add(amount, party)
        log.insert(entry)
        if compiled.spans and log.windows is None:
            log.rebuild(compiled.spans)

    def _remember(
        self, transaction_id: str, ts: int, amount: float, key: tuple[str, str], until: int
    ) -> None:
        """Which entities a later label must reach; forgotten once no window needs it."""
        known = self._transactions.get(transaction_id)
        keys = [] if known is None else [k for k in known[2] if k != key]
        self._transactions[transaction_id] = (ts, amount, [*keys, key], until)
        self._expiry.append((until + LATENESS_MS, transaction_id))
        while self._expiry and self._expiry[0][0] < ts - LATENESS_MS:
            _, old = self._expiry.popleft()
            entry = self._transactions.get(old)
            if entry is not None and entry[3] + LATENESS_MS < ts - LATENESS_MS:
                del self._transactions[old]

    async def apply_labels(self, plans: Sequence[EntityPlan], labels: Sequence[LabelUpdate]) -> int:
        matched = 0
        for label in labels:
            known = self._transactions.get(label.transaction_id)
            if known is None:
                continue
            matched += 1
            ts, amount, keys, _ = known
            for key in keys:
                log = self._logs.get(key)
                if log is None:
                    continue
                if label.is_fraud:
                    log.frauds[label.transaction_id] = (ts, label.label_ts_ms, amount)
                else:
                    log.frauds.pop(label.transaction_id, None)
        return matched

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
