"""Offline engine: every feature of a set for every row of a history, vectorised.

Point-in-time rule: a row sees the entity's events in (t - window, t] that come before it
in the canonical order (event_time, then transaction_id), itself included. Replaying the
history in that order through the online engine yields the same numbers (parity test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer

from feature_store.definitions import (
    AmountToWindowMean,
    CalendarFeature,
    FeatureSet,
    RawAmount,
    SecondsSincePrevious,
    WindowAggregate,
)
from feature_store.errors import HistoryColumnsError

__all__ = ["canonical_order", "compute_offline_features"]


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


def canonical_order(history: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by (event_time, transaction_id): the order the stream replays."""
    ts = _epoch_ms(history["event_time"])
    ids = history["transaction_id"].to_numpy(dtype=str)
    return np.lexsort((ids, ts))


def _epoch_ms(event_time: pd.Series) -> np.ndarray:
    if not isinstance(event_time.dtype, pd.DatetimeTZDtype):
        raise HistoryColumnsError(
            f"event_time has dtype {event_time.dtype}; it must be timezone-aware UTC "
            "(pd.to_datetime(..., utc=True))"
        )
    ms = event_time.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ms]")
    return np.asarray(ms.astype(np.int64))


def _required_columns(feature_set: FeatureSet) -> set[str]:
    columns = {"transaction_id", "event_time", "amount"}
    columns.update(f"{entity}_id" for entity in feature_set.entities)
    return columns


def compute_offline_features(feature_set: FeatureSet, history: pd.DataFrame) -> pd.DataFrame:
    """One feature row per history row, aligned with ``history.index``, columns in set order."""
    missing = _required_columns(feature_set) - set(history.columns)
    if missing:
        raise HistoryColumnsError(
            f"history lacks column(s) {sorted(missing)} needed by feature set "
            f"{feature_set.name!r}; present: {sorted(history.columns)}"
        )
    n = len(history)
    ts = _epoch_ms(history["event_time"])
    amount = history["amount"].to_numpy(dtype=np.float64)
    rank = np.empty(n, dtype=np.int64)
    rank[canonical_order(history)] = np.arange(n)
    per_entity = {
        entity: _EntityWindows(history[f"{entity}_id"].to_numpy(), ts, rank, amount)
        for entity in feature_set.entities
    }
    hours = history["event_time"].dt.hour.to_numpy()
    columns: dict[str, np.ndarray] = {}
    for feature in feature_set.features:
        if isinstance(feature, RawAmount):
            columns[feature.name] = amount
        elif isinstance(feature, WindowAggregate):
            windows = per_entity[feature.entity]
            columns[feature.name] = windows.aggregate(feature.aggregation, feature.window_s)
        elif isinstance(feature, AmountToWindowMean):
            mean = per_entity[feature.entity].aggregate("mean", feature.window_s)
            columns[feature.name] = amount / mean
        elif isinstance(feature, SecondsSincePrevious):
            horizon_s = feature_set.horizon_s(feature.entity)
            columns[feature.name] = per_entity[feature.entity].seconds_since_previous(horizon_s)
        elif isinstance(feature, CalendarFeature):
            if feature.kind == "hour_of_day":
                columns[feature.name] = hours.astype(np.float64)
            elif feature.kind == "is_night":
                columns[feature.name] = (hours <= 6).astype(np.float64)
            else:
                weekday = history["event_time"].dt.day_of_week.to_numpy()
                columns[feature.name] = (weekday >= 5).astype(np.float64)
    return pd.DataFrame(columns, index=history.index)[list(feature_set.names)]


class _EntityWindows:
    """The rows of one entity type sorted by (entity, canonical rank), for window lookups."""

    def __init__(self, ids: np.ndarray, ts: np.ndarray, rank: np.ndarray, amount: np.ndarray):
        codes, _ = pd.factorize(ids)
        self._order = np.lexsort((rank, codes))
        self._ts = ts[self._order]
        self._codes = codes[self._order]
        self._amount = pd.Series(amount[self._order])
        self._positions = np.arange(len(ids))
        # One sortable key per row: entity blocks laid end to end, far enough apart that no
        # window reaches into the previous entity's block.
        self._span = int(ts.max() - ts.min()) + 1 if len(ts) else 1
        self._t0 = int(ts.min()) if len(ts) else 0
        self._cache: dict[int, np.ndarray] = {}

    def _window_start(self, window_s: int) -> np.ndarray:
        if window_s not in self._cache:
            span = self._span + window_s * 1000 + 1
            key = self._codes.astype(np.int64) * span + (self._ts - self._t0)
            # Ties with a later rank are not yet seen: the end bound is the row itself, so
            # only the start needs searching (first key strictly inside the window).
            start = np.searchsorted(key, key - window_s * 1000, side="right")
            self._cache[window_s] = np.minimum(start, self._positions)
        return self._cache[window_s]

    def _unsort(self, values: np.ndarray) -> np.ndarray:
        out = np.empty_like(values)
        out[self._order] = values
        return out

    def aggregate(self, aggregation: str, window_s: int) -> np.ndarray:
        start = self._window_start(window_s)
        end = self._positions + 1
        if aggregation == "count":
            return self._unsort((end - start).astype(np.float64))
        rolling = self._amount.rolling(_Bounds(start, end), min_periods=1)
        if aggregation == "sum":
            values = rolling.sum()
        elif aggregation == "mean":
            values = rolling.mean()
        else:
            values = rolling.max()
        return self._unsort(np.asarray(values, dtype=np.float64))

    def seconds_since_previous(self, horizon_s: int) -> np.ndarray:
        """Gap to the entity's previous row; missing beyond the horizon the online state keeps."""
        gap_ms = np.full(len(self._ts), np.nan)
        same = self._codes[1:] == self._codes[:-1]
        gap_ms[1:][same] = self._ts[1:][same] - self._ts[:-1][same]
        gap_ms[gap_ms > horizon_s * 1000] = np.nan
        return self._unsort(gap_ms / 1000.0)
