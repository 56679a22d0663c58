"""From definitions to work: the aggregates each entity needs, and one shared derive step.

Every backend (the pandas offline engine, the Redis script, the in-memory store) computes
only *prior aggregates*: over the entity's events before the current one, in
(t - lo, t - hi]. :func:`derive_features` then adds the current event where a window
includes it and forms every feature with the same numpy code for both engines, so a
formula can never differ between training and serving.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, Literal

import numpy as np

from feature_store.definitions import (
    COUNTERPARTY,
    AmountToWindowMean,
    AmountZScore,
    CalendarFeature,
    DistinctCount,
    Entity,
    FeatureSet,
    FieldEquals,
    FraudAmountMean,
    FraudRate,
    IsNewCounterparty,
    KnownFraudRun,
    RawAmount,
    SecondsSincePrevious,
    WindowAggregate,
)

__all__ = [
    "LABEL_KINDS",
    "RUN_KINDS",
    "SCAN_KINDS",
    "AggKind",
    "AggSpec",
    "EntityPlan",
    "EventColumns",
    "FeaturePlan",
    "derive_features",
]

AggKind = Literal[
    "count",
    "sum",
    "sumsq",
    "max",
    "distinct",
    "seen",
    "last_ts",
    "fraud",
    "fraud_amount",
    "run_length",
    "run_start",
]
# aggregates computed by scanning the entity's events (the rest use an index or the labels)
SCAN_KINDS: Final = frozenset({"sum", "sumsq", "max", "distinct", "seen", "last_ts"})
# the latest run of known frauds in (t - lo, t - hi]: its length, its first event's time
RUN_KINDS: Final = frozenset({"run_length", "run_start"})
# aggregates that read fraud labels (known by t)
LABEL_KINDS: Final = frozenset({"fraud", "fraud_amount"}) | RUN_KINDS
_STD_FLOOR: Final = 1e-9
_DAY_MS: Final = 86_400_000.0


@dataclass(frozen=True, order=True)
class AggSpec:
    """An aggregate over the entity's prior events with time in (t - lo_ms, t - hi_ms]."""

    kind: AggKind
    lo_ms: int
    hi_ms: int

    def __post_init__(self) -> None:
        if self.kind in LABEL_KINDS and self.hi_ms <= 0:
            raise ValueError(
                f"AggSpec({self.kind!r}, lo_ms={self.lo_ms}, hi_ms={self.hi_ms}): label "
                "aggregates need a window that ends before t (hi_ms > 0)"
            )


@dataclass(frozen=True)
class EntityPlan:
    entity: Entity
    aggs: tuple[AggSpec, ...]

    @property
    def horizon_ms(self) -> int:
        return max(a.lo_ms for a in self.aggs)

    @property
    def scan_lo_ms(self) -> int:
        """How far back a scan must reach; 0 if no aggregate needs a scan."""
        return max((a.lo_ms for a in self.aggs if a.kind in SCAN_KINDS), default=0)

    @property
    def needs_labels(self) -> bool:
        return any(a.kind in LABEL_KINDS for a in self.aggs)

    @property
    def counterparty(self) -> Entity:
        return COUNTERPARTY[self.entity]

    def index(self, spec: AggSpec) -> int:
        return self.aggs.index(spec)


@dataclass(frozen=True)
class EventColumns:
    """What derive needs of the current events, as arrays aligned with the aggregates."""

    amount: np.ndarray
    ts_ms: np.ndarray
    hour: np.ndarray
    weekday: np.ndarray
    fields: Mapping[str, np.ndarray]


def _ms(seconds: int) -> int:
    return seconds * 1000


def _needs(feature: object) -> list[tuple[Entity, AggSpec]]:
    """The prior aggregates one feature is derived from."""
    if isinstance(feature, WindowAggregate):
        lo, hi = _ms(feature.delay_s + feature.window_s), _ms(feature.delay_s)
        kinds: dict[str, list[AggKind]] = {
            "count": ["count"],
            "sum": ["sum"],
            "mean": ["sum", "count"],
            "max": ["max"],
        }
        return [(feature.entity, AggSpec(k, lo, hi)) for k in kinds[feature.aggregation]]
    if isinstance(feature, AmountToWindowMean):
        lo, hi = _ms(feature.delay_s + feature.window_s), _ms(feature.delay_s)
        return [
            (feature.entity, AggSpec("sum", lo, hi)),
            (feature.entity, AggSpec("count", lo, hi)),
        ]
    if isinstance(feature, AmountZScore):
        w = _ms(feature.window_s)
        return [(feature.entity, AggSpec(k, w, 0)) for k in ("sum", "sumsq", "count")]
    if isinstance(feature, SecondsSincePrevious):
        return [(feature.entity, AggSpec("last_ts", _ms(feature.horizon_s), 0))]
    if isinstance(feature, DistinctCount):
        w = _ms(feature.window_s)
        return [
            (feature.entity, AggSpec("distinct", w, 0)),
            (feature.entity, AggSpec("seen", w, 0)),
        ]
    if isinstance(feature, IsNewCounterparty):
        return [(feature.entity, AggSpec("seen", _ms(feature.window_s), 0))]
    if isinstance(feature, FraudRate | FraudAmountMean):
        lo, hi = _ms(feature.delay_s + feature.window_s), _ms(feature.delay_s)
        over: AggKind = "count" if isinstance(feature, FraudRate) else "fraud_amount"
        return [
            (feature.entity, AggSpec("fraud", lo, hi)),
            (feature.entity, AggSpec(over, lo, hi)),
        ]
    if isinstance(feature, KnownFraudRun):
        lo, hi = _ms(feature.delay_s + feature.horizon_s), _ms(feature.delay_s)
        kind: AggKind = "run_length" if feature.measure == "length" else "run_start"
        return [(feature.entity, AggSpec(kind, lo, hi))]
    return []


class FeaturePlan:
    """The compiled form of a feature set: built once, at start."""

    def __init__(self, feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        per_entity: dict[Entity, set[AggSpec]] = {}
        for feature in feature_set.features:
            for entity, spec in _needs(feature):
                per_entity.setdefault(entity, set()).add(spec)
        self.entities: dict[Entity, EntityPlan] = {
            entity: EntityPlan(entity, tuple(sorted(specs)))
            for entity, specs in sorted(per_entity.items())
        }
        # column of each aggregate, keyed by plain tuples: derive looks these up per batch
        self.columns: dict[tuple[str, str, int, int], int] = {
            (entity, spec.kind, spec.lo_ms, spec.hi_ms): j
            for entity, plan in self.entities.items()
            for j, spec in enumerate(plan.aggs)
        }

    @property
    def reach_ms(self) -> int:
        """How far before an event the set's features read other events (0: none)."""
        return max((p.horizon_ms for p in self.entities.values()), default=0)

    @property
    def reach_days(self) -> int:
        """:attr:`reach_ms` in whole days, rounded up: how many days of history to read."""
        return math.ceil(self.reach_ms / _DAY_MS)

    def first_day_read(self, day: date) -> date:
        """The first UTC day a read must start at for the features of events on ``day``
        and later: :attr:`reach_days` back, with a day's margin for midnight boundaries."""
        return day - timedelta(days=self.reach_days + 1)

    @property
    def required_fields(self) -> frozenset[str]:
        fields = {"transaction_id", "event_time", "amount"}
        fields.update(f"{e}_id" for e in self.entities)
        fields.update(f"{p.counterparty}_id" for p in self.entities.values())
        for feature in self.feature_set.features:
            fields.update(feature.required_fields)
        return frozenset(fields)

    def derive(self, aggregates: Mapping[Entity, np.ndarray], events: EventColumns) -> np.ndarray:
        return derive_features(self, aggregates, events)


def derive_features(
    plan: FeaturePlan, aggregates: Mapping[Entity, np.ndarray], events: EventColumns
) -> np.ndarray:
    """Features (n x len(set)) from prior aggregates (n x len(plan.aggs) per entity)."""
    amount = events.amount.astype(np.float64)

    def agg(entity: Entity, spec: AggSpec) -> np.ndarray:
        column: np.ndarray = aggregates[entity][
            :, plan.columns[(entity, spec.kind, spec.lo_ms, spec.hi_ms)]
        ]
        return column

    def window(entity: Entity, kind: AggKind, lo: int, hi: int) -> np.ndarray:
        """The aggregate with the current event added when the window ends at it."""
        prior = agg(entity, AggSpec(kind, lo, hi))
        if hi:
            return prior
        if kind == "count":
            return prior + 1.0
        if kind == "sum":
            return prior + amount
        if kind == "sumsq":
            return prior + amount * amount
        if kind == "max":
            return np.asarray(np.fmax(prior, amount), dtype=np.float64)
        raise ValueError(f"aggregate kind {kind!r} has no current-event update")

    columns: list[np.ndarray] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for feature in plan.feature_set.features:
            if isinstance(feature, RawAmount):
                columns.append(amount)
            elif isinstance(feature, WindowAggregate):
                e = feature.entity
                lo, hi = _ms(feature.delay_s + feature.window_s), _ms(feature.delay_s)
                if feature.aggregation == "mean":
                    columns.append(window(e, "sum", lo, hi) / window(e, "count", lo, hi))
                else:
                    columns.append(window(e, feature.aggregation, lo, hi))
            elif isinstance(feature, AmountToWindowMean):
                e = feature.entity
                lo, hi = _ms(feature.delay_s + feature.window_s), _ms(feature.delay_s)
                mean = window(e, "sum", lo, hi) / window(e, "count", lo, hi)
                columns.append(np.where(mean > 0, amount / np.where(mean > 0, mean, 1.0), np.nan))
            elif isinstance(feature, AmountZScore):
                e, w = feature.entity, _ms(feature.window_s)
                n = window(e, "count", w, 0)
                mean = window(e, "sum", w, 0) / n
                var = np.maximum(window(e, "sumsq", w, 0) / n - mean * mean, 0.0)
                std = np.sqrt(var)
                flat = std <= _STD_FLOOR * np.maximum(1.0, np.abs(mean))
                columns.append(np.where(flat, 0.0, (amount - mean) / np.where(flat, 1.0, std)))
            elif isinstance(feature, SecondsSincePrevious):
                last = agg(feature.entity, AggSpec("last_ts", _ms(feature.horizon_s), 0))
                columns.append((events.ts_ms - last) / 1000.0)
            elif isinstance(feature, DistinctCount):
                e, w = feature.entity, _ms(feature.window_s)
                seen = agg(e, AggSpec("seen", w, 0))
                columns.append(agg(e, AggSpec("distinct", w, 0)) + (1.0 - seen))
            elif isinstance(feature, IsNewCounterparty):
                columns.append(1.0 - agg(feature.entity, AggSpec("seen", _ms(feature.window_s), 0)))
            elif isinstance(feature, FraudRate):
                e = feature.entity
                lo, hi = _ms(feature.delay_s + feature.window_s), _ms(feature.delay_s)
                count = agg(e, AggSpec("count", lo, hi))
                frauds = agg(e, AggSpec("fraud", lo, hi))
                columns.append(np.where(count > 0, frauds / np.maximum(count, 1.0), 0.0))
            elif isinstance(feature, FraudAmountMean):
                e = feature.entity
                lo, hi = _ms(feature.delay_s + feature.window_s), _ms(feature.delay_s)
                frauds = agg(e, AggSpec("fraud", lo, hi))
                total = agg(e, AggSpec("fraud_amount", lo, hi))
                columns.append(np.where(frauds > 0, total / np.maximum(frauds, 1.0), np.nan))
            elif isinstance(feature, KnownFraudRun):
                e = feature.entity
                lo, hi = _ms(feature.delay_s + feature.horizon_s), _ms(feature.delay_s)
                if feature.measure == "length":
                    columns.append(agg(e, AggSpec("run_length", lo, hi)))
                else:
                    start = agg(e, AggSpec("run_start", lo, hi))
                    columns.append((events.ts_ms - start) / _DAY_MS)
            elif isinstance(feature, CalendarFeature):
                if feature.kind == "hour_of_day":
                    columns.append(events.hour.astype(np.float64))
                elif feature.kind == "is_night":
                    columns.append((events.hour <= 6).astype(np.float64))
                else:
                    columns.append((events.weekday >= 5).astype(np.float64))
            elif isinstance(feature, FieldEquals):
                columns.append((events.fields[feature.field] == feature.value).astype(np.float64))
    if not columns:
        return np.empty((len(amount), 0))
    return np.column_stack(columns)
