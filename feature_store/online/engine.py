"""Online engine: features for a micro-batch of transactions, one store round trip.

It applies the same definitions as the offline engine to each entity's log, so the two
agree on every row when a history is replayed in canonical order (see the parity test).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import numpy as np

from feature_store.definitions import (
    AmountToWindowMean,
    CalendarFeature,
    Entity,
    FeatureSet,
    RawAmount,
    SecondsSincePrevious,
    WindowAggregate,
)
from feature_store.online.base import EntityEvent, History, OnlineStore
from feature_store.online.redis import entity_key
from feature_store.schema import Transaction

__all__ = ["OnlineFeatureEngine", "epoch_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """Exact integer milliseconds (floor), as the offline engine's datetime64[ms] cast."""
    return (moment - _EPOCH) // _MS


class _Row:
    """What one transaction's features are computed from; window stats are memoised."""

    __slots__ = ("amount", "event_time", "logs", "stats", "ts_ms")

    def __init__(self, tx: Transaction, ts_ms: int, logs: dict[Entity, History]) -> None:
        self.amount = tx.amount
        self.event_time = tx.event_time.astimezone(UTC)
        self.ts_ms = ts_ms
        self.logs = logs
        self.stats: dict[tuple[Entity, int], tuple[float, float, float]] = {}

    def window(self, entity: Entity, window_s: int) -> tuple[float, float, float]:
        """(count, sum, max) over (t - window, t], the current event included."""
        cached = self.stats.get((entity, window_s))
        if cached is None:
            after = self.ts_ms - window_s * 1000
            amounts = [e.amount for e in self.logs[entity] if e.ts_ms > after]
            amounts.append(self.amount)
            cached = (float(len(amounts)), math.fsum(amounts), max(amounts))
            self.stats[(entity, window_s)] = cached
        return cached


_Compute = Callable[[_Row], float]


def _window_stat(index: int, entity: Entity, window_s: int, row: _Row) -> float:
    return row.window(entity, window_s)[index]


def _window_mean(entity: Entity, window_s: int, row: _Row) -> float:
    count, total, _ = row.window(entity, window_s)
    return total / count


def _amount_to_mean(entity: Entity, window_s: int, row: _Row) -> float:
    return row.amount / _window_mean(entity, window_s, row)


def _seconds_since_previous(entity: Entity, row: _Row) -> float:
    log = row.logs[entity]
    return (row.ts_ms - max(e.ts_ms for e in log)) / 1000.0 if log else math.nan


def _amount(row: _Row) -> float:
    return row.amount


def _hour_of_day(row: _Row) -> float:
    return float(row.event_time.hour)


def _is_night(row: _Row) -> float:
    return float(row.event_time.hour <= 6)


def _is_weekend(row: _Row) -> float:
    return float(row.event_time.weekday() >= 5)


_STAT_INDEX: dict[str, int] = {"count": 0, "sum": 1, "max": 2}
_CALENDAR: dict[str, _Compute] = {
    "hour_of_day": _hour_of_day,
    "is_night": _is_night,
    "is_weekend": _is_weekend,
}


def _compiler(feature_set: FeatureSet) -> list[_Compute]:
    """Turn each definition into a small function once, at start, not per event."""
    computes: list[_Compute] = []
    for feature in feature_set.features:
        if isinstance(feature, RawAmount):
            computes.append(_amount)
        elif isinstance(feature, WindowAggregate):
            e, w = feature.entity, feature.window_s
            if feature.aggregation == "mean":
                computes.append(partial(_window_mean, e, w))
            else:
                computes.append(partial(_window_stat, _STAT_INDEX[feature.aggregation], e, w))
        elif isinstance(feature, AmountToWindowMean):
            computes.append(partial(_amount_to_mean, feature.entity, feature.window_s))
        elif isinstance(feature, SecondsSincePrevious):
            computes.append(partial(_seconds_since_previous, feature.entity))
        elif isinstance(feature, CalendarFeature):
            computes.append(_CALENDAR[feature.kind])
    return computes


class OnlineFeatureEngine:
    def __init__(self, *, feature_set: FeatureSet, store: OnlineStore) -> None:
        self.feature_set = feature_set
        self._store = store
        self._entities = feature_set.entities
        self._horizons_ms = {e: feature_set.horizon_s(e) * 1000 for e in self._entities}
        self._computes = _compiler(feature_set)

    async def compute_batch(self, transactions: Sequence[Transaction]) -> np.ndarray:
        """Features (rows in input order, columns in set order); updates the state too."""
        entities = self._entities
        events: list[EntityEvent] = []
        stamps = [epoch_ms(tx.event_time) for tx in transactions]
        for tx, ts_ms in zip(transactions, stamps, strict=True):
            for entity in entities:
                entity_id = tx.card_id if entity == "card" else tx.merchant_id
                events.append(
                    EntityEvent(
                        key=entity_key(entity, entity_id),
                        ts_ms=ts_ms,
                        transaction_id=tx.transaction_id,
                        amount=tx.amount,
                        horizon_ms=self._horizons_ms[entity],
                    )
                )
        histories = await self._store.read_update_batch(events)
        out = np.empty((len(transactions), len(self._computes)), dtype=np.float64)
        width = len(entities)
        for i, (tx, ts_ms) in enumerate(zip(transactions, stamps, strict=True)):
            logs: dict[Entity, History] = {}
            for j, entity in enumerate(entities):
                # A redelivered transaction must not see itself: its features stay the same.
                logs[entity] = [
                    e for e in histories[i * width + j] if e.transaction_id != tx.transaction_id
                ]
            row = _Row(tx, ts_ms, logs)
            out[i] = [compute(row) for compute in self._computes]
        return out
