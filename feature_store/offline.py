"""Offline engine: every feature of a set for the rows of a history, vectorised.

Point-in-time rule: a row sees the entity's events that come before it in the canonical
order (event_time, then transaction_id), and labels known by its time. Replaying the
history in that order through the online engine gives the same numbers (parity test).

Aggregates are float64 over every row a requested row's windows can reach, so a requested
subset gets the values the whole history would give it; only the requested rows are then
materialised, slice by slice, in the caller's dtype (training asks for float32).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.indexers import BaseIndexer

from feature_store.definitions import DAY_S, Entity, FeatureSet
from feature_store.errors import HistoryColumnsError
from feature_store.plan import RUN_KINDS, AggSpec, EntityPlan, EventColumns, FeaturePlan

__all__ = [
    "DEFAULT_LABEL_DELAY_S",
    "canonical_order",
    "compute_offline_features",
    "epoch_ms",
    "offline_feature_matrix",
]

# When a history has no label_time, a fraud label is taken as known this long after the
# transaction: the fraud-detection handbook's assumption.
DEFAULT_LABEL_DELAY_S = 7 * DAY_S
_OPTIONAL_FIELDS = ("currency", "mcc", "channel", "country")
_NEVER: Final = np.iinfo(np.int64).max
# rows derived at a time: bounds the float64 temporaries of the derive step (~100 MB)
_CHUNK_ROWS: Final = 1 << 18
# aggregates that need window bounds for every row (pandas' rolling kernels), not just
# for the requested ones
_ROLLING_KINDS: Final = frozenset({"sum", "sumsq", "max"})

# keys breaking ties of the primary sort key, least significant first, for some positions
_TieKeys = Callable[[np.ndarray], list[np.ndarray]]


class _Bounds(BaseIndexer):
    """Precomputed window bounds, so pandas' compensated rolling kernels do the sums."""

    def __init__(self, start: np.ndarray, end: np.ndarray) -> None:
        super().__init__()
        self._start = start
        self._end = end

    def get_window_bounds(
        self,
        num_values: int = 0,
        min_periods: int | None = None,
        center: bool | None = None,
        closed: str | None = None,
        step: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        return self._start, self._end


def epoch_ms(event_time: pd.Series) -> np.ndarray:
    if not isinstance(event_time.dtype, pd.DatetimeTZDtype):
        raise HistoryColumnsError(
            f"event_time has dtype {event_time.dtype}; it must be timezone-aware UTC "
            "(pd.to_datetime(..., utc=True))"
        )
    ms = event_time.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ms]")
    return np.asarray(ms.astype(np.int64))


def _tie_keys(history: pd.DataFrame) -> _TieKeys:
    """The canonical order's secondary keys (tie_break, then the id) for given positions.

    Ids sort in their own type: numerically for integer ids (the handbook's), as text else.
    Only rows that tie on time need them, so string ids are never converted wholesale.
    """

    def keys(positions: np.ndarray) -> list[np.ndarray]:
        column = history["transaction_id"].take(positions)
        is_int = pd.api.types.is_integer_dtype(column)
        out = [column.to_numpy() if is_int else column.to_numpy(str)]
        if "tie_break" in history.columns:
            out.append(history["tie_break"].take(positions).to_numpy())
        return out

    return keys


def _break_ties(order: np.ndarray, sorted_key: np.ndarray, tie_keys: _TieKeys) -> np.ndarray:
    """``order`` (a stable argsort giving ``sorted_key``) with runs of equal keys re-sorted
    by ``tie_keys``: the same permutation as a lexsort over all keys, at the cost of the
    tied rows only."""
    same = sorted_key[1:] == sorted_key[:-1]
    if not same.any():
        return order
    tied = np.zeros(len(sorted_key), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    slots = np.flatnonzero(tied)
    rows = order[slots]
    order[slots] = rows[np.lexsort((*tie_keys(rows), sorted_key[slots]))]
    return order


def canonical_order(history: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by (event_time, transaction_id): the order the stream replays.

    Ids sort in their own type: numerically for integer ids (the handbook's), as text else.
    An optional ``tie_break`` column orders simultaneous events before the id does.
    """
    ts = epoch_ms(history["event_time"])
    order = np.argsort(ts, kind="stable")
    return _break_ties(order, ts[order], _tie_keys(history))


def _event_columns(
    history: pd.DataFrame, rows: np.ndarray, ts_ms: np.ndarray, fields: list[str]
) -> EventColumns:
    times = history["event_time"].take(rows).dt.tz_convert("UTC")
    return EventColumns(
        amount=history["amount"].take(rows).to_numpy(dtype=np.float64),
        ts_ms=ts_ms.astype(np.float64),
        hour=times.dt.hour.to_numpy(),
        weekday=times.dt.day_of_week.to_numpy(),
        fields={f: history[f].take(rows).astype(str).to_numpy(dtype=object) for f in fields},
    )


def compute_offline_features(
    feature_set: FeatureSet,
    history: pd.DataFrame,
    *,
    label_delay_s: int = DEFAULT_LABEL_DELAY_S,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """One float64 feature row per history row (or per position in ``rows``), aligned with
    ``history.index``, columns in set order.

    Fraud labels come from ``is_fraud``; each is known at ``label_time`` when the history
    has that column (and it is set), else ``label_delay_s`` after the transaction.
    """
    values = offline_feature_matrix(
        feature_set, history, rows, label_delay_s=label_delay_s, dtype=np.float64
    )
    index = history.index if rows is None else history.index[rows]
    return pd.DataFrame(values, index=index, columns=list(feature_set.names))


def _label_known_ms(
    history: pd.DataFrame, context: np.ndarray, ts: np.ndarray, label_delay_s: int
) -> np.ndarray:
    """When each context row's fraud label becomes known (ms); never for legitimate rows."""
    fraud = history["is_fraud"].to_numpy(dtype=bool)[context]
    known = np.where(fraud, ts + label_delay_s * 1000, _NEVER)
    if "label_time" in history.columns:
        label_time = pd.to_datetime(history["label_time"].take(context), utc=True)
        has = label_time.notna().to_numpy()
        label_ms = np.zeros(len(context), dtype=np.int64)
        label_ms[has] = epoch_ms(label_time[has])
        known = np.where(fraud & has, label_ms, known)
    return known


def offline_feature_matrix(
    feature_set: FeatureSet,
    history: pd.DataFrame,
    rows: np.ndarray | None = None,
    *,
    label_delay_s: int = DEFAULT_LABEL_DELAY_S,
    dtype: npt.DTypeLike = np.float64,
) -> np.ndarray:
    """Features (len(rows) x len(set), set order) of the history rows at positions ``rows``
    (every row if None), in ``dtype``; aggregation itself is always float64."""
    plan = FeaturePlan(feature_set)
    missing = plan.required_fields - set(history.columns)
    needs_labels = any(p.needs_labels for p in plan.entities.values())
    if needs_labels and "is_fraud" not in history.columns:
        missing = missing | {"is_fraud"}
    if missing:
        raise HistoryColumnsError(
            f"history lacks column(s) {sorted(missing)} needed by feature set "
            f"{feature_set.name!r}; present: {sorted(history.columns)}"
        )
    ts_all = epoch_ms(history["event_time"])
    targets = np.arange(len(history)) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(targets) and (targets.min() < 0 or targets.max() >= len(history)):
        raise IndexError(f"rows must be positions in [0, {len(history)}) of the history")
    horizon = plan.reach_ms
    if len(targets):
        # only rows some target's window can reach: from the earliest target's horizon up
        # to the latest target (an event never sees a later one)
        t_min, t_max = ts_all[targets].min(), ts_all[targets].max()
        context = np.flatnonzero((ts_all >= t_min - horizon) & (ts_all <= t_max))
    else:
        context = np.empty(0, dtype=np.int64)
    ts = ts_all[context]
    del ts_all
    where = np.searchsorted(context, targets)  # each target's slot in the context
    known = _label_known_ms(history, context, ts, label_delay_s) if needs_labels else None
    amount = history["amount"].to_numpy(dtype=np.float64)[context]
    history_ties = _tie_keys(history)

    def context_ties(slots: np.ndarray) -> list[np.ndarray]:
        return history_ties(context[slots])

    # an id column is one plan's entity and another's counterparty: factorise it once
    id_entities = {*plan.entities, *(p.counterparty for p in plan.entities.values())}
    codes = {e: _codes(history[f"{e}_id"], context) for e in sorted(id_entities)}
    aggregates: dict[Entity, np.ndarray] = {}
    for entity, entity_plan in plan.entities.items():
        entity_rows = _EntityRows(
            codes=codes[entity],
            counterparty=codes[entity_plan.counterparty],
            ts=ts,
            amount=amount,
            known=known,
            tie_keys=context_ties,
            targets=where,
            reach_ms=entity_plan.horizon_ms,
        )
        aggregates[entity] = entity_rows.aggregates(entity_plan)
        del entity_rows
    del amount, known, codes
    fields = [f for f in _OPTIONAL_FIELDS if f in plan.required_fields]
    out = np.empty((len(targets), len(feature_set.features)), dtype=dtype)
    for lo in range(0, len(targets), _CHUNK_ROWS):
        hi = min(lo + _CHUNK_ROWS, len(targets))
        chunk = {entity: values[lo:hi] for entity, values in aggregates.items()}
        events = _event_columns(history, targets[lo:hi], ts[where[lo:hi]], fields)
        out[lo:hi] = plan.derive(chunk, events)
    return out


def _codes(ids: pd.Series, context: np.ndarray) -> np.ndarray:
    """Integer codes of the ids at the context positions (missing ids get their own code).
    Factorised on the column itself, so string ids never become Python objects."""
    codes, _ = pd.factorize(ids, use_na_sentinel=False)
    return np.asarray(codes[context], dtype=np.int64)


def _radix_order(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``order`` re-sorted stably by ``values`` (non-negative integers): 16 bits a pass,
    least significant first, as numpy's stable sort is a radix sort only up to 16 bits
    (timsort beyond, 2-3x slower on unordered values)."""
    top = int(values.max(initial=0))
    shift = 0
    while True:
        digit = ((values[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
        if top >> shift == 0:
            return order


class _EntityRows:
    """The rows of one entity type, sorted by (entity, canonical order), for window lookups.

    Window bounds are computed for every row only where pandas' rolling kernels need them;
    everything else is computed for the target rows alone.
    """

    def __init__(
        self,
        *,
        codes: np.ndarray,
        counterparty: np.ndarray,
        ts: np.ndarray,
        amount: np.ndarray,
        known: np.ndarray | None,
        tie_keys: _TieKeys,
        targets: np.ndarray,
        reach_ms: int,
    ) -> None:
        n = len(ts)
        t0 = int(ts.min()) if n else 0
        # One sortable key per row: entity blocks laid end to end, far enough apart that no
        # window (reaching ``reach_ms`` back) crosses into a neighbouring block.
        span = (int(ts.max()) - t0 if n else 0) + reach_ms + 1
        key = codes * span + (ts - t0)
        # the key's stable order, as time's then the entity's (a radix sort): about 3x
        # faster than sorting the key itself, and nearly free on time when rows come in
        # time order
        order = _radix_order(codes, np.argsort(ts, kind="stable"))
        self._key = key[order]
        del key
        # simultaneous events of one entity: the canonical order's tie keys decide
        order = _break_ties(order, self._key, tie_keys)
        self._codes = codes[order]
        self._ts = ts[order]
        self._amount = amount[order]
        self._counterparty = counterparty[order]
        self._known = None if known is None else known[order]
        slot = np.empty(n, dtype=np.int64)
        slot[order] = np.arange(n)
        slots = slot[targets]
        del slot
        # the targets' places in the sorted rows, visited in sorted order (binary searches
        # with sorted needles, sequential gathers); ``_back`` restores the caller's order
        self._back = _radix_order(slots, np.arange(len(slots)))
        self._targets = slots[self._back]
        self._prev_pair: np.ndarray | None = None
        # (lo, hi) -> (length, start): a run's two aggregates come from one walk
        self._runs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def aggregates(self, plan: EntityPlan) -> np.ndarray:
        """The plan's aggregates for the targets, in the order they were given."""
        # column-major: each aggregate is written, and later read, as one contiguous column
        out = np.empty((len(self._targets), len(plan.aggs)), dtype=np.float64, order="F")
        windows: dict[tuple[int, int], list[int]] = {}
        for j, spec in enumerate(plan.aggs):
            windows.setdefault((spec.lo_ms, spec.hi_ms), []).append(j)
        # aggregates over one window share its bounds; each window's are freed after use
        for (lo, hi), columns in windows.items():
            specs = [plan.aggs[j] for j in columns]
            every_row = any(s.kind in _ROLLING_KINDS for s in specs)
            start, end = self._bounds(lo, hi, every_row=every_row)
            for j, spec in zip(columns, specs, strict=True):
                out[:, j] = self._aggregate(spec, start, end, every_row=every_row)
            del start, end
        unsorted = np.empty_like(out)
        unsorted[self._back] = out
        return unsorted

    def _bounds(self, lo: int, hi: int, *, every_row: bool) -> tuple[np.ndarray, np.ndarray]:
        """[start, end) positions of the prior rows in (t - lo, t - hi], for every row or
        only for the targets."""
        key = self._key if every_row else self._key[self._targets]
        start = np.searchsorted(self._key, key - lo, side="right")
        if hi == 0:  # rows before this one; later ties are not yet seen
            end = np.arange(len(self._key)) if every_row else self._targets.copy()
        else:
            end = np.searchsorted(self._key, key - hi, side="right")
        return np.minimum(start, end), end

    def _aggregate(
        self, spec: AggSpec, start: np.ndarray, end: np.ndarray, *, every_row: bool
    ) -> np.ndarray:
        """The aggregate for the targets; [start, end) are the window's bounds for every
        row (in sorted order) when ``every_row``, else for the targets."""
        if spec.kind in ("fraud", "fraud_amount"):
            return self._fraud_sum(spec, amounts=spec.kind == "fraud_amount")
        if spec.kind in RUN_KINDS:
            window = (spec.lo_ms, spec.hi_ms)
            if window not in self._runs:
                self._runs[window] = self._fraud_run(spec)
            length, first = self._runs[window]
            return length if spec.kind == "run_length" else first
        if spec.kind == "seen":
            return self._seen(spec)
        if spec.kind == "last_ts":
            return self._last_ts(spec)
        if spec.kind in _ROLLING_KINDS:
            squared = spec.kind == "sumsq"
            values = pd.Series(self._amount * self._amount if squared else self._amount)
            rolling = values.rolling(_Bounds(start, end), min_periods=0)
            result = rolling.max() if spec.kind == "max" else rolling.sum()
            every: np.ndarray = result.to_numpy(dtype=np.float64)
            targets: np.ndarray = every[self._targets]
            return targets
        if every_row:
            start, end = start[self._targets], end[self._targets]
        if spec.kind == "count":
            return np.asarray(end - start, dtype=np.float64)
        if spec.kind == "distinct":
            return self._distinct(start, end)
        raise ValueError(f"aggregate kind {spec.kind!r} has no offline implementation")

    def _last_ts(self, spec: AggSpec) -> np.ndarray:
        rows = self._targets
        prev = np.maximum(rows - 1, 0)
        prev_ts = self._ts[prev]
        inside = (
            (rows > 0)
            & (self._codes[prev] == self._codes[rows])
            & (prev_ts > self._ts[rows] - spec.lo_ms)
        )
        last = np.full(len(rows), np.nan)
        last[inside] = prev_ts[inside]
        return last

    def _previous_pair_position(self) -> np.ndarray:
        """Position of the previous row with the same (entity, counterparty), else -1."""
        if self._prev_pair is None:
            # one key per (entity, counterparty) pair; the stable sort keeps row order
            pair = self._codes * (int(self._counterparty.max(initial=0)) + 1) + self._counterparty
            order = np.argsort(pair, kind="stable")
            pair = pair[order]
            same = pair[1:] == pair[:-1]
            prev = np.full(len(order), -1, dtype=np.int64)
            prev[order[1:][same]] = order[:-1][same]
            self._prev_pair = prev
        return self._prev_pair

    def _seen(self, spec: AggSpec) -> np.ndarray:
        rows = self._targets
        prev = self._previous_pair_position()[rows]
        has = prev >= 0
        seen = np.zeros(len(rows))
        seen[has] = self._ts[prev[has]] > self._ts[rows[has]] - spec.lo_ms
        return seen

    def _distinct(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Distinct counterparties among rows [start, end): rows whose previous same-pair
        row lies before ``start`` are first occurrences. Walks back lag by lag over the
        rows still inside their window, so the work is the total window size."""
        prev = self._previous_pair_position()
        distinct = np.zeros(len(start))
        active = np.nonzero(end > start)[0]
        lag = 1
        while len(active):
            j = end[active] - lag
            inside = j >= start[active]
            active, j = active[inside], j[inside]
            distinct[active] += prev[j] < start[active]
            lag += 1
        return distinct

    def _fraud_sum(self, spec: AggSpec, *, amounts: bool) -> np.ndarray:
        """Frauds (or their amounts) in (t - lo, t - hi] whose label is known by t: each
        fraud adds to the rows of its entity with t in [max(ts + hi, known), ts + lo), via
        a difference array."""
        if self._known is None:
            raise HistoryColumnsError("fraud aggregates need is_fraud labels")
        frauds = np.nonzero(self._known < _NEVER)[0]
        base = self._key[frauds] - self._ts[frauds]  # the fraud's entity block, as a key
        first = np.maximum(self._ts[frauds] + spec.hi_ms, self._known[frauds])
        last = self._ts[frauds] + spec.lo_ms
        lo = np.searchsorted(self._key, base + first, side="left")
        hi = np.searchsorted(self._key, base + last, side="left")
        hi = np.maximum(lo, hi)
        weight = self._amount[frauds] if amounts else np.ones(len(frauds))
        diff = np.zeros(len(self._key) + 1)
        np.add.at(diff, lo, weight)
        np.add.at(diff, hi, -weight)
        sums: np.ndarray = np.cumsum(diff[:-1])[self._targets]
        return sums

    def _fraud_run(self, spec: AggSpec) -> tuple[np.ndarray, np.ndarray]:
        """Per target: the latest run of frauds known at t among its entity's rows in
        (t - lo, t - hi] (those after the latest row that is not, rows at its time
        excluded); its length and its first row's time (NaN when empty).

        Walks back from each target's newest row in the window, lag by lag over the
        targets still inside a run, so the work is the total run length."""
        if self._known is None:
            raise HistoryColumnsError("fraud aggregates need is_fraud labels")
        key = self._key[self._targets]
        t = self._ts[self._targets]
        block = key - t  # the target's entity block, as a key
        floor = np.searchsorted(self._key, key - spec.lo_ms, side="right")  # first inside
        newest = np.searchsorted(self._key, key - spec.hi_ms, side="right") - 1
        # the run begins after the time of the first row, walking back, that is not a
        # fraud known at t; (t - lo) when every row in the window is one
        cut = key - spec.lo_ms
        active = np.flatnonzero(newest >= floor)
        j = newest[active]
        while len(active):
            stop = self._known[j] > t[active]
            cut[active[stop]] = self._key[j[stop]]
            active, j = active[~stop], j[~stop] - 1
            inside = j >= floor[active]
            active, j = active[inside], j[inside]
        first = np.searchsorted(self._key, cut, side="right")
        length = np.maximum(newest + 1 - first, 0).astype(np.float64)
        start = np.full(len(key), np.nan)
        has = length > 0
        start[has] = self._key[first[has]] - block[has]
        return length, start
