"""Time-correct datasets: training window, label delay, test window, prequential folds.

The protocol of the fraud-detection handbook: train on ``train_days`` from
``train_start``; skip ``delay_days`` (labels of the latest training days are not known
yet when the model goes live); test on the next ``test_days``. Cards already known to be
compromised are taken out of the test set: on each test day, those with a fraud (from the
training window on) whose label had come by then, by the history's ``label_time``; without
one, as the handbook does, those with a fraud in the training window or on the matching
day of the delay period (the last day whose labels are known by then).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypedDict

import numpy as np
import pandas as pd

from batch_training.errors import TrainingConfigError, TrainingDataError
from feature_store.offline import epoch_ms

__all__ = [
    "DataSplit",
    "SplitDescription",
    "TimeSplit",
    "complete_test_end",
    "day_index",
    "days_without_payments",
    "fold_splits",
    "latest_split",
    "split_history",
]


class SplitDescription(TypedDict):
    """A split as people read it, and as the metadata records it (``split_*``)."""

    train: str  # "first day .. last day"
    delay_days: int
    test: str


@dataclass(frozen=True, kw_only=True)
class TimeSplit:
    train_start: date
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7

    def __post_init__(self) -> None:
        for name in ("train_days", "test_days"):
            if getattr(self, name) < 1:
                raise TrainingConfigError(
                    f"{name}={getattr(self, name)} must be at least 1 day "
                    f"(--{name.replace('_', '-')})"
                )
        if self.delay_days < 0:
            raise TrainingConfigError(
                f"delay_days={self.delay_days} must be >= 0 (--delay-days; 0: no label delay)"
            )

    @property
    def test_start(self) -> date:
        return self.train_start + timedelta(days=self.train_days + self.delay_days)

    @property
    def test_end(self) -> date:
        """First day after the test window."""
        return self.test_start + timedelta(days=self.test_days)

    @property
    def span_days(self) -> int:
        return self.train_days + self.delay_days + self.test_days

    def shifted(self, days: int) -> TimeSplit:
        return TimeSplit(
            train_start=self.train_start - timedelta(days=days),
            train_days=self.train_days,
            delay_days=self.delay_days,
            test_days=self.test_days,
        )

    def describe(self) -> SplitDescription:
        last_train = self.train_start + timedelta(days=self.train_days - 1)
        return {
            "train": f"{self.train_start} .. {last_train}",
            "delay_days": self.delay_days,
            "test": f"{self.test_start} .. {self.test_end - timedelta(days=1)}",
        }


@dataclass(frozen=True, eq=False)
class DataSplit:
    split: TimeSplit
    # row positions of the history: days in calendar order, history order within a day
    train: np.ndarray
    test: np.ndarray
    # the test window's rows of cards already known to be compromised, left out of test:
    # production blocks those cards, so the report says how much fraud this leaves aside
    known_compromised: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    # when a fraud counts as known: "label_time" (the history's), or "delay_days" after it;
    # with label times, how many of the frauds the split counted had none (the delay rule)
    known_by: str = "delay_days"
    frauds_without_label_time: int = 0

    @property
    def train_rows(self) -> int:
        return len(self.train)

    @property
    def test_rows(self) -> int:
        return len(self.test)


def day_index(history: pd.DataFrame) -> np.ndarray:
    """UTC calendar day of each row as days since 1970-01-01."""
    return epoch_ms(history["event_time"]) // 86_400_000


def _day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def latest_split(
    history: pd.DataFrame,
    *,
    train_days: int,
    delay_days: int,
    test_days: int,
    label_delay_s: int,
    last_event_ms: int | None = None,
) -> TimeSplit:
    """The most recent split whose test labels are complete (``last_event_ms``: the last
    event of a history that ``history`` is the earlier part of).

    A fraud is labelled ``label_delay_s`` after it happened, so the test window ends at the
    latest midnight whose frauds are all labelled by the history's last event. Frauds after
    it may not be labelled yet, and the first labelled are those the serving model flagged:
    testing on them would favour the champion.
    """
    if label_delay_s < 0:
        raise TrainingConfigError(
            f"label_delay_s={label_delay_s} must be >= 0 (--label-delay-days)"
        )
    _require_payments(history)
    ms = epoch_ms(history["event_time"])
    first_ms = int(ms.min())
    last_ms = int(ms.max()) if last_event_ms is None else last_event_ms
    epoch = date(1970, 1, 1)
    first = epoch + timedelta(days=first_ms // 86_400_000)
    last = epoch + timedelta(days=last_ms // 86_400_000)
    test_end = complete_test_end(last_ms, label_delay_s)
    span = train_days + delay_days + test_days
    train_start = test_end - timedelta(days=span)
    if train_start < first:
        raise TrainingDataError(
            f"the latest window with complete labels needs {span} days (train {train_days}, "
            f"delay {delay_days}, test {test_days}) ending {label_delay_s / 86_400:g} days "
            f"before the last event ({pd.Timestamp(last_ms, unit='ms', tz='UTC')}), for the test "
            f"window's labels to arrive, but the history covers {first} .. {last}; use "
            "fewer days, a smaller --label-delay-days if labels arrive sooner, or "
            "--train-start for an explicit window"
        )
    return TimeSplit(
        train_start=train_start,
        train_days=train_days,
        delay_days=delay_days,
        test_days=test_days,
    )


def _require_payments(history: pd.DataFrame) -> None:
    if history.empty:
        raise TrainingDataError(
            "the history holds no payments: there is no window to train and test on"
        )


def complete_test_end(last_ms: int, label_delay_s: int) -> date:
    """The latest midnight (UTC) ending a test window whose frauds are all labelled by the
    event at ``last_ms``: a window ending at M is complete if M - 1 ms + the delay is no
    later than that event."""
    return date(1970, 1, 1) + timedelta(days=(last_ms + 1 - label_delay_s * 1000) // 86_400_000)


def split_history(
    history: pd.DataFrame, split: TimeSplit, *, last_day: date | None = None
) -> DataSplit:
    """Row positions of the training and (compromised-card-filtered) test sets.

    ``last_day``: the last day ``history`` covers when that is later than its last
    payment (a history read until a day, whose final days had none)."""
    _require_payments(history)
    days = day_index(history)
    first, last = int(days.min()), int(days.max())
    if last_day is not None:
        last = max(last, _day_number(last_day))
    start = _day_number(split.train_start)
    if start < first or _day_number(split.test_end) - 1 > last:
        epoch, window = date(1970, 1, 1), split.describe()
        raise TrainingDataError(
            f"the split (train {window['train']}, test {window['test']}) needs days "
            f"{split.train_start} to "
            f"{split.test_end - timedelta(days=1)}, but the history covers "
            f"{epoch + timedelta(days=first)} to {epoch + timedelta(days=last)}; "
            "choose fewer days or --folds, or another --train-start (without one, the "
            "latest window's folds reach back from the history's end)"
        )
    # cards as integer codes: known-compromised sets become a boolean mask per code
    cards, _ = pd.factorize(history["card_id"], use_na_sentinel=False)
    fraud = history["is_fraud"].to_numpy(dtype=bool)
    # positions within a day stay in history order, days in calendar order
    train = np.concatenate(
        [np.flatnonzero(days == day) for day in range(start, start + split.train_days)]
    )
    known_from, labelled = _fraud_known_from(history, days, fraud, split.delay_days)
    # the frauds from the training window on: a card with one known by a test day is out
    last_test_day = start + split.train_days + split.delay_days + split.test_days - 1
    counted = np.flatnonzero(fraud & (days >= start) & (days < last_test_day))
    by_label = int(labelled[counted].sum())
    fraud_days, fraud_known, fraud_cards = days[counted], known_from[counted], cards[counted]
    test_positions, removed = [], []
    card_count = int(cards.max(initial=-1)) + 1
    for offset in range(split.test_days):
        test_day = start + split.train_days + split.delay_days + offset
        known = np.zeros(card_count, dtype=bool)
        known[fraud_cards[(fraud_days < test_day) & (fraud_known <= test_day)]] = True
        on_day = np.flatnonzero(days == test_day)
        already = known[cards[on_day]]
        test_positions.append(on_day[~already])
        removed.append(on_day[already])
    return DataSplit(
        split=split,
        train=train,
        test=np.concatenate(test_positions),
        known_compromised=np.concatenate(removed),
        known_by=("delay_days", "label_time")[by_label > 0],
        frauds_without_label_time=len(counted) - by_label if by_label else 0,
    )


def _fraud_known_from(
    history: pd.DataFrame, days: np.ndarray, fraud: np.ndarray, delay_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first day (a day number) on which its fraud is known, and whether that
    came from its label time.

    The day after the day its label came (``label_time``), where the history has one:
    when the bank knew, taking a time at midnight (a date-only chargeback date, say) as
    any time that day. Else the handbook's rule: ``delay_days`` + 1 days after the
    payment's day (by test day d, the labels of days up to d - delay - 1), which gives
    the published 58,264-row test set.
    """
    known_from = days + delay_days + 1
    if "label_time" not in history.columns:
        return known_from, np.zeros(len(days), dtype=bool)
    frauds = np.flatnonzero(fraud)  # a few per thousand: convert only theirs
    label = pd.to_datetime(history["label_time"].take(frauds), utc=True)
    has = label.notna().to_numpy()
    labelled = np.zeros(len(days), dtype=bool)
    labelled[frauds[has]] = True
    if not has.any():
        return known_from, labelled
    # a label stamped before its payment (a clock's fault) counts from the day after the
    # payment's all the same: split_history counts a fraud only on later days
    ms = label.to_numpy(dtype="datetime64[ms]")[has].astype(np.int64)
    known_from[labelled] = ms // 86_400_000 + 1
    return known_from, labelled


def days_without_payments(days: np.ndarray, split: TimeSplit) -> list[date]:
    """The training and test days of ``split`` on which no row falls (``days``: each
    row's :func:`day_index`): an archiver outage, say, that the metrics would not show."""
    start, test_start = _day_number(split.train_start), _day_number(split.test_start)
    window = np.array(
        [*range(start, start + split.train_days), *range(test_start, _day_number(split.test_end))]
    )
    held = np.isin(window, days, kind="table")  # a table over the days' span: O(rows)
    return [date(1970, 1, 1) + timedelta(days=int(d)) for d in window[~held]]


def fold_splits(split: TimeSplit, folds: int) -> list[TimeSplit]:
    """Prequential folds: the split, then shifted back one test window at a time."""
    if folds < 1:
        raise TrainingConfigError(f"folds={folds} must be at least 1 (--folds)")
    return [split.shifted(k * split.test_days) for k in range(folds)]
