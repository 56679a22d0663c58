"""Feature definitions: each feature is declared once, and both engines compute it.

Windows are expressed as (t - delay - window, t - delay]. With no delay the window ends at
the transaction itself and includes it; with a delay it ends ``delay`` before it (the
handbook's terminal windows, labels that are only known late). A feature set is an ordered
tuple of definitions; its ``fingerprint`` goes into the model metadata, so a model is only
served with the exact features it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Final, Literal

__all__ = [
    "CORE_FEATURE_SET",
    "DAY_S",
    "EXTENDED_FEATURE_SET",
    "HANDBOOK_FEATURE_SET",
    "AmountToWindowMean",
    "AmountZScore",
    "CalendarFeature",
    "DistinctCount",
    "Entity",
    "Feature",
    "FeatureSet",
    "FieldEquals",
    "FraudRate",
    "IsNewCounterparty",
    "RawAmount",
    "SecondsSincePrevious",
    "WindowAggregate",
    "feature_set_by_name",
]

Entity = Literal["card", "merchant"]
Aggregation = Literal["count", "sum", "mean", "max"]
CalendarKind = Literal["hour_of_day", "is_night", "is_weekend"]

DAY_S: Final = 86_400
_LABELS: Final = {600: "10m", 3600: "1h", DAY_S: "1d", 7 * DAY_S: "7d", 30 * DAY_S: "30d"}
COUNTERPARTY: Final[dict[str, Entity]] = {"card": "merchant", "merchant": "card"}


def _label(seconds: int) -> str:
    if seconds in _LABELS:
        return _LABELS[seconds]
    return f"{seconds // DAY_S}d" if seconds % DAY_S == 0 else f"{seconds}s"


def _delay_suffix(delay_s: int) -> str:
    return f"_delay{_label(delay_s)}" if delay_s else ""


class _Named:
    """``alias`` replaces the generated name (presets that keep their own column names)."""

    alias: str | None

    @property
    def generated_name(self) -> str:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.alias or self.generated_name

    @property
    def required_fields(self) -> frozenset[str]:
        return frozenset()


@dataclass(frozen=True, kw_only=True)
class WindowAggregate(_Named):
    """count / sum / mean / max of the entity's amounts in (t - delay - window, t - delay]."""

    entity: Entity
    aggregation: Aggregation
    window_s: int
    delay_s: int = 0
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        what = "tx_count" if self.aggregation == "count" else f"amount_{self.aggregation}"
        return f"{self.entity}_{what}_{_label(self.window_s)}{_delay_suffix(self.delay_s)}"


@dataclass(frozen=True, kw_only=True)
class AmountToWindowMean(_Named):
    """The amount divided by the entity's mean amount over (t - delay - window, t - delay].

    A delay gives a reference the last days cannot inflate (a compromised card's recent
    fraudulent amounts do not raise the mean the new ones are compared with).
    """

    entity: Entity
    window_s: int
    delay_s: int = 0
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        return f"amount_to_{self.entity}_mean_{_label(self.window_s)}{_delay_suffix(self.delay_s)}"


@dataclass(frozen=True, kw_only=True)
class AmountZScore(_Named):
    """(amount - mean) / std of the entity's amounts over (t - window, t]; 0 when std is 0."""

    entity: Entity
    window_s: int
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        return f"amount_zscore_{self.entity}_{_label(self.window_s)}"


@dataclass(frozen=True, kw_only=True)
class SecondsSincePrevious(_Named):
    """Seconds since the entity's previous event at or before t; missing beyond ``horizon_s``."""

    entity: Entity
    horizon_s: int = 30 * DAY_S
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        return f"seconds_since_prev_{self.entity}_tx"


@dataclass(frozen=True, kw_only=True)
class DistinctCount(_Named):
    """Distinct counterparties (a card's merchants) in (t - window, t], this one included."""

    entity: Entity
    window_s: int
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        other = COUNTERPARTY[self.entity]
        return f"{self.entity}_distinct_{other}s_{_label(self.window_s)}"


@dataclass(frozen=True, kw_only=True)
class IsNewCounterparty(_Named):
    """1 when the counterparty was not seen with the entity in (t - window, t) before."""

    entity: Entity
    window_s: int
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        return f"is_new_{COUNTERPARTY[self.entity]}_for_{self.entity}_{_label(self.window_s)}"


@dataclass(frozen=True, kw_only=True)
class FraudRate(_Named):
    """Frauds / transactions of the entity in (t - delay - window, t - delay]; 0 if empty.

    Only labels known at t count: a label is known at its ``label_time``, or, when the data
    has none, ``delay`` after the transaction (the assumption the delay encodes).
    """

    entity: Entity
    window_s: int
    delay_s: int = 7 * DAY_S
    alias: str | None = None

    def __post_init__(self) -> None:
        if self.delay_s <= 0:
            raise ValueError(
                f"FraudRate delay_s={self.delay_s}: labels are never known at once; "
                "use a delay > 0 (default 7 days)"
            )

    @property
    def generated_name(self) -> str:
        return f"{self.entity}_fraud_rate_{_label(self.window_s)}{_delay_suffix(self.delay_s)}"


@dataclass(frozen=True, kw_only=True)
class CalendarFeature(_Named):
    """Hour of day (UTC), night (hour <= 6) or weekend (Saturday, Sunday)."""

    kind: CalendarKind
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        return self.kind


@dataclass(frozen=True, kw_only=True)
class RawAmount(_Named):
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        return "amount"


@dataclass(frozen=True, kw_only=True)
class FieldEquals(_Named):
    """1 when an optional field of the event has ``value``; left out if the data lacks it."""

    field: Literal["channel", "currency", "mcc", "country"]
    value: str
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        return f"{self.field}_is_{self.value}"

    @property
    def required_fields(self) -> frozenset[str]:
        return frozenset({self.field})


Feature = (
    WindowAggregate
    | AmountToWindowMean
    | AmountZScore
    | SecondsSincePrevious
    | DistinctCount
    | IsNewCounterparty
    | FraudRate
    | CalendarFeature
    | RawAmount
    | FieldEquals
)


@dataclass(frozen=True, kw_only=True)
class FeatureSet:
    name: str
    version: int
    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature set {self.name!r} defines {duplicates} more than once")

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

    @property
    def label(self) -> str:
        """``name.vN@fingerprint-prefix``: what decisions report as their feature-set version."""
        return f"{self.name}.v{self.version}@{self.fingerprint[:12]}"

    def available_for(self, fields: set[str] | frozenset[str]) -> FeatureSet:
        """This set without the features whose input fields the data does not have."""
        kept = tuple(f for f in self.features if f.required_fields <= fields)
        return self if len(kept) == len(self.features) else replace(self, features=kept)

    def select(self, names: tuple[str, ...]) -> FeatureSet:
        """The sub-set with exactly these feature names, in this order (a model's features)."""
        by_name = {f.name: f for f in self.features}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"feature set {self.name!r} has no feature(s) {unknown}")
        return replace(self, features=tuple(by_name[n] for n in names))


def _windows(entity: Entity, aggregation: Aggregation, *windows: int) -> list[Feature]:
    return [WindowAggregate(entity=entity, aggregation=aggregation, window_s=w) for w in windows]


_CARD_WINDOWS: Final = (600, 3600, DAY_S, 7 * DAY_S, 30 * DAY_S)

CORE_FEATURE_SET: Final = FeatureSet(
    name="core",
    version=2,
    features=(
        RawAmount(),
        *_windows("card", "count", *_CARD_WINDOWS),
        *_windows("card", "sum", *_CARD_WINDOWS),
        *_windows("card", "mean", *_CARD_WINDOWS),
        *_windows("card", "max", *_CARD_WINDOWS),
        AmountToWindowMean(entity="card", window_s=30 * DAY_S),
        AmountZScore(entity="card", window_s=30 * DAY_S),
        SecondsSincePrevious(entity="card"),
        DistinctCount(entity="card", window_s=DAY_S),
        IsNewCounterparty(entity="card", window_s=30 * DAY_S),
        *_windows("merchant", "count", 3600, DAY_S, 7 * DAY_S),
        *[FraudRate(entity="merchant", window_s=w) for w in (DAY_S, 7 * DAY_S, 30 * DAY_S)],
        CalendarFeature(kind="hour_of_day"),
        CalendarFeature(kind="is_night"),
        CalendarFeature(kind="is_weekend"),
        FieldEquals(field="channel", value="online"),
    ),
)


def _handbook() -> FeatureSet:
    """The 14 baseline features of the fraud-detection handbook, under its column names."""
    features: list[Feature] = [
        CalendarFeature(kind="is_weekend", alias="TX_DURING_WEEKEND"),
        CalendarFeature(kind="is_night", alias="TX_DURING_NIGHT"),
    ]
    for days in (1, 7, 30):
        w = days * DAY_S
        features += [
            WindowAggregate(
                entity="card",
                aggregation="count",
                window_s=w,
                alias=f"CUSTOMER_ID_NB_TX_{days}DAY_WINDOW",
            ),
            WindowAggregate(
                entity="card",
                aggregation="mean",
                window_s=w,
                alias=f"CUSTOMER_ID_AVG_AMOUNT_{days}DAY_WINDOW",
            ),
        ]
    for days in (1, 7, 30):
        w = days * DAY_S
        features += [
            WindowAggregate(
                entity="merchant",
                aggregation="count",
                window_s=w,
                delay_s=7 * DAY_S,
                alias=f"TERMINAL_ID_NB_TX_{days}DAY_WINDOW",
            ),
            FraudRate(entity="merchant", window_s=w, alias=f"TERMINAL_ID_RISK_{days}DAY_WINDOW"),
        ]
    return FeatureSet(name="handbook", version=1, features=tuple(features))


HANDBOOK_FEATURE_SET: Final = _handbook()

# For batch training on long histories: ``core`` plus merchant risk over longer and more
# delayed windows and a card reference mean the last two weeks cannot inflate. Its state
# reaches back 63 days, which is why the stream's default stays ``core``.
EXTENDED_FEATURE_SET: Final = FeatureSet(
    name="extended",
    version=1,
    features=(
        *CORE_FEATURE_SET.features,
        *[
            FraudRate(entity="merchant", window_s=w, delay_s=d)
            for d, w in (
                (7 * DAY_S, 21 * DAY_S),
                (7 * DAY_S, 28 * DAY_S),
                (28 * DAY_S, 7 * DAY_S),
                (35 * DAY_S, 28 * DAY_S),
            )
        ],
        AmountToWindowMean(entity="card", window_s=60 * DAY_S, delay_s=14 * DAY_S),
        AmountToWindowMean(entity="card", window_s=90 * DAY_S, delay_s=0),
    ),
)

_FEATURE_SETS: Final = {
    s.name: s for s in (CORE_FEATURE_SET, HANDBOOK_FEATURE_SET, EXTENDED_FEATURE_SET)
}


def feature_set_by_name(name: str) -> FeatureSet:
    try:
        return _FEATURE_SETS[name]
    except KeyError:
        known = ", ".join(sorted(_FEATURE_SETS))
        raise ValueError(f"unknown feature set {name!r}; known: {known}") from None
