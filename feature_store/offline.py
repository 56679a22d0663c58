"""Offline engine: every feature of a set for every row of a history, vectorised.

Point-in-time rule: a row sees the entity's events that come before it in the canonical
order (event_time, then transaction_id), and labels known by its time. Replaying the
history in that order through the online engine gives the same numbers (parity test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from feature_store.definitions import DAY_S, Entity, FeatureSet
from feature_store.errors import HistoryColumnsError
from feature_store.plan import AggSpec, EntityPlan, EventColumns, FeaturePlan

__all__ = ["DEFAULT_LABEL_DELAY_S", "canonical_order", "compute_offline_features", "epoch_ms"]

# When a history has no label_time, a fraud label is taken as known this long after the
# transaction: the fraud-detection handbook's assumption.
DEFAULT_LABEL_DELAY_S = 7 * DAY_S
_OPTIONAL_FIELDS = ("currency", "mcc", "channel", "country")


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


def canonical_order(history: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by (event_time, transaction_id): the order the stream replays.

    Ids sort in their own type: numerically for integer ids (the handbook's), as text else.
    An optional ``tie_break`` column orders simultaneous events before the id does.
    """
    column = history["transaction_id"]
    ids = column.to_numpy() if pd.api.types.is_integer_dtype(column) else column.to_numpy(str)
    keys = [ids]
    if "tie_break" in history.columns:
        keys.append(history["tie_break"].to_numpy())
    keys.append(epoch_ms(history["event_time"]))
    return np.lexsort(keys)


def event_columns(frame: pd.DataFrame, ts_ms: np.ndarray) -> EventColumns:
    times = frame["event_time"].dt.tz_convert("UTC")
    return EventColumns(
        amount=frame["amount"].to_numpy(dtype=np.float64),
        ts_ms=ts_ms.astype(np.float64),
        hour=times.dt.hour.to_numpy(),
        weekday=times.dt.day_of_week.to_numpy(),
        fields={
            f: frame[f].astype(str).to_numpy(dtype=object)
            for f in _OPTIONAL_FIELDS
            if f in frame.columns
        },
    )


def compute_offline_features(
    feature_set: FeatureSet,
    history: pd.DataFrame,
    *,
    label_delay_s: int = DEFAULT_LABEL_DELAY_S,
) -> pd.DataFrame:
    """One feature row per history row, aligned with ``history.index``, columns in set order.

    Fraud labels come from ``is_fraud``; each is known at ``label_time`` when the history
    has that column (and it is set), else ``label_delay_s`` after the transaction.
    """
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
    n = len(history)
    ts = epoch_ms(history["event_time"])
    rank = np.empty(n, dtype=np.int64)
    rank[canonical_order(history)] = np.arange(n)
    known = None
    if needs_labels:
        fraud = history["is_fraud"].to_numpy(dtype=bool)
        known = np.where(fraud, ts + label_delay_s * 1000, np.iinfo(np.int64).max)
        if "label_time" in history.columns:
            label_time = pd.to_datetime(history["label_time"], utc=True)
            has = label_time.notna().to_numpy()
            label_ms = np.zeros(n, dtype=np.int64)
            label_ms[has] = epoch_ms(label_time[has])
            known = np.where(fraud & has, label_ms, known)
    aggregates: dict[Entity, np.ndarray] = {}
    for entity, entity_plan in plan.entities.items():
        rows = _EntityRows(
            ids=history[f"{entity}_id"].to_numpy(),
            counterparty=history[f"{entity_plan.counterparty}_id"].to_numpy(),
            ts=ts,
            rank=rank,
            amount=history["amount"].to_numpy(dtype=np.float64),
            known=known,
        )
        aggregates[entity] = rows.aggregates(entity_plan)
    features = plan.derive(aggregates, event_columns(history, ts))
    return pd.DataFrame(features, index=history.index, columns=list(feature_set.names))


class _EntityRows:
    """The rows of one entity type, sorted by (entity, canonical rank), for window lookups."""

    def __init__(
        self,
        *,
        ids: np.ndarray,
        counterparty: np.ndarray,
        ts: np.ndarray,
        rank: np.ndarray,
        amount: np.ndarray,
        known: np.ndarray | None,
    ) -> None:
        codes, _ = pd.factorize(ids)
        self._order = np.lexsort((rank, codes))
        self._codes = codes[self._order]
        self._ts = ts[self._order]
        self._amount = pd.Series(amount[self._order])
        self._counterparty = pd.factorize(counterparty)[0][self._order]
        self._known = None if known is None else known[self._order]
        self._positions = np.arange(len(ids))
        self._t0 = int(ts.min()) if len(ts) else 0
        self._range = int(ts.max() - ts.min()) + 1 if len(ts) else 1
        self._prev_pair: np.ndarray | None = None

    def _keys(self, reach_ms: int) -> tuple[np.ndarray, int]:
        # One sortable key per row: entity blocks laid end to end, far enough apart that no
        # window (reaching ``reach_ms`` either way) crosses into a neighbouring block.
        span = self._range + reach_ms + 1
        return self._codes.astype(np.int64) * span + (self._ts - self._t0), span

    def _bounds(self, spec: AggSpec) -> tuple[np.ndarray, np.ndarray]:
        """[start, end) positions of the prior rows in (t - lo, t - hi]."""
        key, _ = self._keys(spec.lo_ms)
        start = np.searchsorted(key, key - spec.lo_ms, side="right")
        if spec.hi_ms == 0:
            end = self._positions.copy()  # rows before this one; later ties are not yet seen
        else:
            end = np.searchsorted(key, key - spec.hi_ms, side="right")
        return np.minimum(start, end), end

    def _unsort(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(len(values), dtype=np.float64)
        out[self._order] = values
        return out

    def aggregates(self, plan: EntityPlan) -> np.ndarray:
        out = np.empty((len(self._positions), len(plan.aggs)), dtype=np.float64)
        for j, spec in enumerate(plan.aggs):
            out[:, j] = self._unsort(self._aggregate(spec))
        return out

    def _aggregate(self, spec: AggSpec) -> np.ndarray:
        if spec.kind == "fraud":
            return self._fraud_count(spec)
        if spec.kind == "seen":
            return self._seen(spec)
        if spec.kind == "last_ts":
            return self._last_ts(spec)
        start, end = self._bounds(spec)
        if spec.kind == "count":
            return np.asarray(end - start, dtype=np.float64)
        if spec.kind == "distinct":
            return self._distinct(start, end)
        values = self._amount * self._amount if spec.kind == "sumsq" else self._amount
        rolling = values.rolling(_Bounds(start, end), min_periods=0)
        result = rolling.max() if spec.kind == "max" else rolling.sum()
        return np.asarray(result.to_numpy(), dtype=np.float64)

    def _last_ts(self, spec: AggSpec) -> np.ndarray:
        last = np.full(len(self._ts), np.nan)
        same = self._codes[1:] == self._codes[:-1]
        prev_ts = self._ts[:-1].astype(np.float64)
        inside = same & (prev_ts > self._ts[1:] - spec.lo_ms)
        last[1:][inside] = prev_ts[inside]
        return last

    def _previous_pair_position(self) -> np.ndarray:
        """Position of the previous row with the same (entity, counterparty), else -1."""
        if self._prev_pair is None:
            order = np.lexsort((self._positions, self._counterparty, self._codes))
            codes, parties = self._codes[order], self._counterparty[order]
            same = (codes[1:] == codes[:-1]) & (parties[1:] == parties[:-1])
            prev = np.full(len(order), -1, dtype=np.int64)
            prev[order[1:][same]] = order[:-1][same]
            self._prev_pair = prev
        return self._prev_pair

    def _seen(self, spec: AggSpec) -> np.ndarray:
        prev = self._previous_pair_position()
        has = prev >= 0
        seen = np.zeros(len(prev))
        seen[has] = self._ts[prev[has]] > self._ts[has] - spec.lo_ms
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

    def _fraud_count(self, spec: AggSpec) -> np.ndarray:
        """Frauds in (t - lo, t - hi] whose label is known by t: each fraud adds one to the
        rows of its entity with t in [max(ts + hi, known), ts + lo), via a difference array."""
        if self._known is None:
            raise HistoryColumnsError("fraud aggregates need is_fraud labels")
        frauds = np.nonzero(self._known < np.iinfo(np.int64).max)[0]
        key, span = self._keys(spec.lo_ms)
        base = self._codes[frauds].astype(np.int64) * span - self._t0
        first = np.maximum(self._ts[frauds] + spec.hi_ms, self._known[frauds])
        last = self._ts[frauds] + spec.lo_ms
        lo = np.searchsorted(key, base + first, side="left")
        hi = np.searchsorted(key, base + last, side="left")
        hi = np.maximum(lo, hi)
        diff = np.zeros(len(key) + 1)
        np.add.at(diff, lo, 1.0)
        np.add.at(diff, hi, -1.0)
        return np.cumsum(diff[:-1])
