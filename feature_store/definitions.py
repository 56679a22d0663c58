"""Feature definitions: each feature is declared once, and both engines compute it.

A feature set is an ordered tuple of definitions; its ``fingerprint`` (a hash of the
canonical description) goes into the model metadata so a model is only ever served with
the exact features it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Final, Literal

__all__ = [
    "CORE_FEATURE_SET",
    "DAY_S",
    "Aggregation",
    "AmountToWindowMean",
    "CalendarFeature",
    "Entity",
    "Feature",
    "FeatureSet",
    "RawAmount",
    "SecondsSincePrevious",
    "WindowAggregate",
    "feature_set_by_name",
]

Entity = Literal["card", "merchant"]
Aggregation = Literal["count", "sum", "mean", "max"]
CalendarKind = Literal["hour_of_day", "is_night", "is_weekend"]

DAY_S: Final = 86_400
_WINDOW_LABELS: Final = {600: "10m", 3600: "1h", DAY_S: "1d", 7 * DAY_S: "7d", 30 * DAY_S: "30d"}


def _window_label(seconds: int) -> str:
    return _WINDOW_LABELS.get(seconds, f"{seconds}s")


@dataclass(frozen=True, kw_only=True)
class WindowAggregate:
    """An aggregate of the entity's amounts over (t - window, t], the current event included."""

    entity: Entity
    aggregation: Aggregation
    window_s: int

    @property
    def name(self) -> str:
        what = "tx_count" if self.aggregation == "count" else f"amount_{self.aggregation}"
        return f"{self.entity}_{what}_{_window_label(self.window_s)}"


@dataclass(frozen=True, kw_only=True)
class AmountToWindowMean:
    """The amount divided by the entity's mean amount over (t - window, t]."""

    entity: Entity
    window_s: int

    @property
    def name(self) -> str:
        return f"amount_to_{self.entity}_mean_{_window_label(self.window_s)}"


@dataclass(frozen=True, kw_only=True)
class SecondsSincePrevious:
    """Seconds since the entity's previous event at or before t; missing for its first."""

    entity: Entity

    @property
    def name(self) -> str:
        return f"seconds_since_prev_{self.entity}_tx"


@dataclass(frozen=True, kw_only=True)
class CalendarFeature:
    """Hour of day (UTC), night (hour <= 6) or weekend (Saturday, Sunday)."""

    kind: CalendarKind

    @property
    def name(self) -> str:
        return self.kind


@dataclass(frozen=True, kw_only=True)
class RawAmount:
    @property
    def name(self) -> str:
        return "amount"


Feature = WindowAggregate | AmountToWindowMean | SecondsSincePrevious | CalendarFeature | RawAmount


@dataclass(frozen=True, kw_only=True)
class FeatureSet:
    name: str
    version: int
    features: tuple[Feature, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def fingerprint(self) -> str:
        """sha256 over the canonical description: changes whenever any definition changes."""
        canonical = json.dumps(
            {
                "name": self.name,
                "version": self.version,
                "features": [{"type": type(f).__name__, **asdict(f)} for f in self.features],
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    def horizon_s(self, entity: Entity) -> int:
        """How far back the online state of ``entity`` must reach; 0 if no feature needs it."""
        windows = [
            f.window_s
            for f in self.features
            if isinstance(f, WindowAggregate | AmountToWindowMean) and f.entity == entity
        ]
        needs_previous = any(
            isinstance(f, SecondsSincePrevious) and f.entity == entity for f in self.features
        )
        return max([*windows, DAY_S if needs_previous else 0])

    @property
    def entities(self) -> tuple[Entity, ...]:
        ordered: tuple[Entity, ...] = ("card", "merchant")
        return tuple(e for e in ordered if self.horizon_s(e) > 0)


def _velocity(entity: Entity, aggregation: Aggregation, *windows: int) -> list[Feature]:
    return [WindowAggregate(entity=entity, aggregation=aggregation, window_s=w) for w in windows]


CORE_FEATURE_SET: Final = FeatureSet(
    name="core",
    version=1,
    features=(
        RawAmount(),
        *_velocity("card", "count", 600, 3600, DAY_S, 7 * DAY_S),
        *_velocity("card", "sum", 3600, DAY_S),
        *_velocity("card", "mean", 7 * DAY_S, 30 * DAY_S),
        *_velocity("card", "max", DAY_S),
        AmountToWindowMean(entity="card", window_s=30 * DAY_S),
        SecondsSincePrevious(entity="card"),
        *_velocity("merchant", "count", 3600, DAY_S),
        CalendarFeature(kind="hour_of_day"),
        CalendarFeature(kind="is_night"),
        CalendarFeature(kind="is_weekend"),
    ),
)

_FEATURE_SETS: Final = {CORE_FEATURE_SET.name: CORE_FEATURE_SET}


def feature_set_by_name(name: str) -> FeatureSet:
    try:
        return _FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(sorted(_FEATURE_SETS))
        raise ValueError(f"unknown feature set {name!r}; known: {known}") from None
