"""Feature definitions: each feature is declared once, and both engines compute it.

Windows are expressed as (t - delay - window, t - delay]. With no delay the window ends at
the transaction itself and includes it; with a delay it ends ``delay`` before it (the
handbook's terminal windows, labels that are only known late). A feature set is an ordered
tuple of definitions; its ``fingerprint`` goes into the model metadata, so a model is only
served with the exact features it was trained on. The named sets live in
:mod:`feature_store.catalogue`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Final, Literal

__all__ = [
    "DAY_S",
    "AmountToWindowMean",
    "AmountZScore",
    "CalendarFeature",
    "DistinctCount",
    "Entity",
    "Feature",
    "FeatureSet",
    "FieldEquals",
    "FraudAmountMean",
    "FraudRate",
    "IsNewCounterparty",
    "KnownFraudRun",
    "RawAmount",
    "SecondsSincePrevious",
    "WindowAggregate",
]

Entity = Literal["card", "merchant"]
Aggregation = Literal["count", "sum", "mean", "max"]
CalendarKind = Literal["hour_of_day", "is_night", "is_weekend"]
RunMeasure = Literal["length", "days"]

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


class _LabelDelayed(_Named):
    """A feature over labels: they are only ever known some time after the payment."""

    delay_s: int

    def __post_init__(self) -> None:
        if self.delay_s <= 0:
            raise ValueError(
                f"{type(self).__name__} delay_s={self.delay_s}: labels are never known at "
                "once; use a delay > 0 (default 7 days)"
            )


@dataclass(frozen=True, kw_only=True)
class _LabelWindow(_LabelDelayed):
    """Labels of the entity's events in (t - delay - window, t - delay]."""

    entity: Entity
    window_s: int
    delay_s: int = 7 * DAY_S
    alias: str | None = None


@dataclass(frozen=True, kw_only=True)
class FraudRate(_LabelWindow):
    """Frauds / transactions of the entity in (t - delay - window, t - delay]; 0 if empty.

    Only labels known at t count: a label is known at its ``label_time``, or, when the data
    has none, ``delay`` after the transaction (the assumption the delay encodes).
    """

    @property
    def generated_name(self) -> str:
        return f"{self.entity}_fraud_rate_{_label(self.window_s)}{_delay_suffix(self.delay_s)}"


@dataclass(frozen=True, kw_only=True)
class FraudAmountMean(_LabelWindow):
    """Mean amount of the entity's known frauds in (t - delay - window, t - delay]; missing
    when there are none.

    It tells frauds that look like the entity's usual payments (a compromised terminal's)
    from outsized ones (a stolen card spending big at an honest merchant).
    """

    @property
    def generated_name(self) -> str:
        window = f"{_label(self.window_s)}{_delay_suffix(self.delay_s)}"
        return f"{self.entity}_fraud_amount_mean_{window}"


@dataclass(frozen=True, kw_only=True)
class KnownFraudRun(_LabelDelayed):
    """The entity's latest run of known frauds, among its events in
    (t - delay - horizon, t - delay]: the events after the latest one that is not a fraud
    known at t (events at that one's time excluded, so the order of ties never matters).

    ``length``: how many events the run has. ``days``: days from the run's first event to
    t, missing when the run is empty. A compromised terminal turns every payment into a
    fraud from some day on: its run grows, and its age says how long ago that began.
    """

    entity: Entity
    measure: RunMeasure
    horizon_s: int = 28 * DAY_S
    delay_s: int = 7 * DAY_S
    alias: str | None = None

    @property
    def generated_name(self) -> str:
        window = f"{_label(self.horizon_s)}{_delay_suffix(self.delay_s)}"
        return f"{self.entity}_fraud_run_{self.measure}_{window}"


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
    | FraudAmountMean
    | KnownFraudRun
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
