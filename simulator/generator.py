"""The traffic generator: labelled histories for training and an endless event stream.

Day ``k`` covers ``[start + k days, start + k + 1 days)`` and is built only from random
streams keyed by ``(seed, stream, k)``. So a day's rows do not depend on how many days were
asked for, and ``events(start=s)`` yields exactly the rows of ``history(start=s, days=n)``
for its first ``n`` days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.schema import Transaction
from simulator.config import SimulationConfig
from simulator.errors import SimulatorError
from simulator.ids import format_tx_ids, id_seed
from simulator.legit import legit_day
from simulator.profiles import CHANNELS, COUNTRIES, build_cards, build_merchants
from simulator.rows import DAY_MS, FRAUD_SCENARIOS, NS_PER_MS, FraudScenario, RowBatch
from simulator.scenarios import (
    LOOKBACK_DAYS,
    CompromiseWindows,
    apply_compromises,
    card_testing,
    compromise_windows,
    stolen_card,
)

__all__ = ["HISTORY_COLUMNS", "SimulatedEvent", "TrafficGenerator"]

HISTORY_COLUMNS: Final = (
    "transaction_id",
    "event_time",
    "card_id",
    "merchant_id",
    "amount",
    "currency",
    "mcc",
    "channel",
    "country",
    "is_fraud",
    "fraud_scenario",
    "label_time",
)

# Random stream ids: one per kind of draw, so adding draws to one never shifts another.
_PROFILES, _LEGIT, _STOLEN, _TESTING, _COMPROMISE, _COMPROMISE_APPLY, _LABELS = range(7)
_DAY_KEY_OFFSET: Final = 1 << 20  # SeedSequence needs non-negative words; lookback goes < 0
_NAT: Final = np.iinfo(np.int64).min
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class SimulatedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One simulated payment plus its ground truth, which never goes inside the transaction."""

    transaction: Transaction
    is_fraud: bool
    fraud_scenario: FraudScenario
    label_time: datetime | None = None  # when the fraud became known; None when legitimate


def _to_ns(start: datetime) -> int:
    if start.tzinfo is None:
        raise SimulatorError(
            f"start={start.isoformat()!r} has no timezone; pass an aware UTC datetime, "
            "e.g. datetime(2024, 1, 1, tzinfo=UTC)"
        )
    delta = start.astimezone(UTC) - _EPOCH
    # Whole milliseconds, like every event time, so day windows line up with the grid.
    return (delta // timedelta(milliseconds=1)) * NS_PER_MS


class TrafficGenerator:
    """Payment traffic from a fixed population of cards and merchants, with labelled fraud."""

    def __init__(self, config: SimulationConfig) -> None:
        self._config = config
        rng = self._rng(_PROFILES, 0)
        self._merchants = build_merchants(rng, config.merchants)
        self._cards = build_cards(
            rng, config.cards, self._merchants, mean_tx_per_day=config.mean_tx_per_card_day
        )
        self._card_ids = pa.array(self._cards.ids, pa.large_string())
        self._merchant_ids = pa.array(self._merchants.ids, pa.large_string())
        self._mcc = pa.array(
            [self._merchants.mcc[c] for c in self._merchants.category], pa.large_string()
        )
        self._channels = pa.array(CHANNELS, pa.large_string())
        self._countries = pa.array(COUNTRIES, pa.large_string())
        self._scenarios = pa.array(FRAUD_SCENARIOS, pa.large_string())

    @property
    def config(self) -> SimulationConfig:
        return self._config

    @property
    def expected_tx_per_day(self) -> float:
        """Sum of the cards' activity rates: the natural pace of the simulated clock.

        Fraud adds about 1 % on top.
        """
        return float(self._cards.tx_per_day.sum())

    def history(
        self,
        *,
        start: datetime,
        days: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """``days`` days of labelled traffic from ``start``, sorted by (event_time,
        transaction_id); ``progress(done_days, days)`` is called after each day."""
        if days < 0:
            raise SimulatorError(f"days={days}; ask for 0 or more days of history")
        start_ns = _to_ns(start)
        batches: list[RowBatch] = []
        labels: list[np.ndarray] = []
        for k in range(days):
            batch, label_ns = self._day(start_ns, k)
            batches.append(batch)
            labels.append(label_ns)
            if progress is not None:
                progress(k + 1, days)
        if not batches:
            batch, label_ns = self._day(start_ns, 0)
            batches, labels = [batch.take(np.arange(0))], [label_ns[:0]]
        return self._frame(RowBatch.concat(batches), np.concatenate(labels))

    def events(self, *, start: datetime) -> Iterator[SimulatedEvent]:
        """Endless traffic from ``start`` in (event_time, transaction_id) order, a day at a
        time. Event times follow the simulated clock, not the wall clock."""
        start_ns = _to_ns(start)
        k = 0
        while True:
            batch, label_ns = self._day(start_ns, k)
            yield from self._day_events(batch, label_ns)
            k += 1

    # -- one day ---------------------------------------------------------------------------

    def _rng(self, stream: int, day: int) -> np.random.Generator:
        return np.random.default_rng([self._config.seed, stream, day + _DAY_KEY_OFFSET])

    def _day(self, start_ns: int, k: int) -> tuple[RowBatch, np.ndarray]:
        cfg, cards, merchants = self._config, self._cards, self._merchants
        day_start = start_ns + k * DAY_MS * NS_PER_MS
        day_end = day_start + DAY_MS * NS_PER_MS

        def origin(e: int) -> int:
            return start_ns + e * DAY_MS * NS_PER_MS

        ids = id_seed(cfg.seed, start_ns)  # another start: other ids, the same traffic
        rows = legit_day(
            self._rng(_LEGIT, k),
            seed=ids,
            day=k,
            day_start_ns=day_start,
            cards=cards,
            merchants=merchants,
        )
        windows = CompromiseWindows.concat(
            [
                compromise_windows(
                    self._rng(_COMPROMISE, e),
                    day_start_ns=origin(e),
                    rate=cfg.compromised_merchant_rate,
                    merchants=merchants,
                )
                for e in range(k - LOOKBACK_DAYS["compromised_merchant"], k + 1)
            ]
        )
        rows = apply_compromises(
            self._rng(_COMPROMISE_APPLY, k), rows, windows, merchant_count=len(merchants)
        )
        parts = [rows]
        for stream, make, rate, lookback in (
            (_STOLEN, stolen_card, cfg.stolen_card_rate, LOOKBACK_DAYS["stolen_card"]),
            (_TESTING, card_testing, cfg.card_testing_rate, LOOKBACK_DAYS["card_testing"]),
        ):
            for e in range(k - lookback, k + 1):
                fraud = make(
                    self._rng(stream, e),
                    seed=ids,
                    day=e,
                    day_start_ns=origin(e),
                    rate=rate,
                    cards=cards,
                    merchants=merchants,
                )
                inside = (fraud.time_ns >= day_start) & (fraud.time_ns < day_end)
                parts.append(fraud.take(np.flatnonzero(inside)))
        day = RowBatch.concat(parts)
        day = day.take(np.lexsort((day.key, day.time_ns)))
        # Fraud is confirmed 1-10 days later (chargeback, cardholder report).
        delay_ms = self._rng(_LABELS, k).integers(DAY_MS, 10 * DAY_MS, size=len(day))
        label_ns = np.where(day.scenario > 0, day.time_ns + delay_ms * NS_PER_MS, _NAT)
        return day, label_ns

    # -- rendering -------------------------------------------------------------------------

    def _columns(self, rows: RowBatch) -> dict[str, pa.Array]:
        return {
            "transaction_id": format_tx_ids(rows.key),
            "card_id": pc.take(self._card_ids, pa.array(rows.card)),
            "merchant_id": pc.take(self._merchant_ids, pa.array(rows.merchant)),
            "mcc": pc.take(self._mcc, pa.array(rows.merchant)),
            "channel": pc.take(self._channels, pa.array(rows.channel)),
            "country": pc.take(self._countries, pa.array(rows.country)),
            "fraud_scenario": pc.take(self._scenarios, pa.array(rows.scenario)),
        }

    def _frame(self, rows: RowBatch, label_ns: np.ndarray) -> pd.DataFrame:
        text = {name: array.to_pandas() for name, array in self._columns(rows).items()}
        n = len(rows)
        data: dict[str, pd.Series] = {
            "transaction_id": text["transaction_id"],
            "event_time": _utc_series(rows.time_ns),
            "card_id": text["card_id"],
            "merchant_id": text["merchant_id"],
            "amount": pd.Series(rows.amount, dtype="float64"),
            "currency": pa.array([self._config.currency] * n, pa.large_string()).to_pandas(),
            "mcc": text["mcc"],
            "channel": text["channel"],
            "country": text["country"],
            "is_fraud": pd.Series((rows.scenario > 0).astype(np.int8)),
            "fraud_scenario": text["fraud_scenario"],
            "label_time": _utc_series(label_ns),
        }
        return pd.DataFrame(data, columns=list(HISTORY_COLUMNS))

    def _day_events(self, rows: RowBatch, label_ns: np.ndarray) -> Iterator[SimulatedEvent]:
        columns = {name: array.to_pylist() for name, array in self._columns(rows).items()}
        currency = self._config.currency
        time_ms = (rows.time_ns // NS_PER_MS).tolist()
        label_ms = np.where(label_ns == _NAT, -1, label_ns // NS_PER_MS).tolist()
        for i, (tx_id, t_ms, card, merchant, amount, mcc, channel, country, scenario) in enumerate(
            zip(
                columns["transaction_id"],
                time_ms,
                columns["card_id"],
                columns["merchant_id"],
                rows.amount.tolist(),
                columns["mcc"],
                columns["channel"],
                columns["country"],
                columns["fraud_scenario"],
                strict=True,
            )
        ):
            tx = Transaction(
                transaction_id=tx_id,
                event_time=_EPOCH + timedelta(milliseconds=t_ms),
                card_id=card,
                merchant_id=merchant,
                amount=amount,
                currency=currency,
                mcc=mcc,
                channel=channel,
                country=country,
            )
            fraud = scenario != "none"
            yield SimulatedEvent(
                transaction=tx,
                is_fraud=fraud,
                fraud_scenario=scenario,
                label_time=_EPOCH + timedelta(milliseconds=label_ms[i]) if fraud else None,
            )


def _utc_series(ns: np.ndarray) -> pd.Series:
    # NaT is int64 min, so the view maps missing label times to NaT.
    return pd.Series(pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize(UTC))
