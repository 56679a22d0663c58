"""History shape, determinism, and agreement between history() and events()."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simulator
from feature_store.schema import Transaction, TransactionCodec, looks_like_pan
from simulator import (
    HISTORY_COLUMNS,
    SimulationConfig,
    SimulationConfigError,
    SimulatorError,
    TrafficGenerator,
    write_history,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
# Small population, frequent fraud: every scenario shows up, including across midnights.
SMALL = SimulationConfig(
    cards=300,
    merchants=60,
    seed=11,
    stolen_card_rate=0.02,
    compromised_merchant_rate=0.02,
    card_testing_rate=0.02,
)


def _utc(values: list[datetime | None]) -> pd.Series:
    as_objects = pd.Series(values, dtype="object")
    return pd.to_datetime(as_objects, utc=True).astype("datetime64[ns, UTC]")


def test_public_api() -> None:
    assert sorted(simulator.__all__) == sorted(
        [
            "FRAUD_SCENARIOS",
            "HISTORY_COLUMNS",
            "INVALID_KINDS",
            "FraudScenario",
            "InvalidKind",
            "LiveStats",
            "MessageProducer",
            "SimulatedEvent",
            "SimulationConfig",
            "SimulationConfigError",
            "SimulatorError",
            "TrafficGenerator",
            "invalid_payload",
            "produce_live",
            "replay_start",
            "write_history",
        ]
    )


def test_columns_and_dtypes() -> None:
    df = TrafficGenerator(SMALL).history(start=START, days=2)
    assert tuple(df.columns) == HISTORY_COLUMNS
    expected = {
        "event_time": "datetime64[ns, UTC]",
        "label_time": "datetime64[ns, UTC]",
        "amount": "float64",
        "is_fraud": "int8",
    }
    for column, dtype in expected.items():
        assert str(df[column].dtype) == dtype, column
    for column in set(HISTORY_COLUMNS) - set(expected):
        assert pd.api.types.is_string_dtype(df[column].dtype), column
    assert df["transaction_id"].is_unique
    assert (df["amount"] > 0).all()
    assert np.allclose(df["amount"], df["amount"].round(2))
    assert set(df["currency"]) == {"EUR"}
    assert df.index.equals(pd.RangeIndex(len(df)))


def test_sorted_by_event_time_then_transaction_id() -> None:
    df = TrafficGenerator(SMALL).history(start=START, days=3)
    resorted = df.sort_values(["event_time", "transaction_id"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(df, resorted)
    assert df["event_time"].min() >= pd.Timestamp(START)
    assert df["event_time"].max() < pd.Timestamp(START + timedelta(days=3))


def test_same_config_same_frame_and_same_parquet_bytes(tmp_path: Path) -> None:
    a = TrafficGenerator(SMALL).history(start=START, days=3)
    b = TrafficGenerator(SMALL).history(start=START, days=3)
    pd.testing.assert_frame_equal(a, b)
    first = write_history(a, tmp_path / "one" / "history.parquet")
    second = write_history(b, tmp_path / "two" / "nested" / "history.parquet")
    assert first.read_bytes() == second.read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(first), a, check_dtype=False)


def test_other_seed_other_traffic() -> None:
    a = TrafficGenerator(SMALL).history(start=START, days=1)
    b = TrafficGenerator(SimulationConfig(cards=300, merchants=60, seed=12)).history(
        start=START, days=1
    )
    assert set(a["card_id"]).isdisjoint(set(b["card_id"]))
    assert set(a["transaction_id"]).isdisjoint(set(b["transaction_id"]))


def test_a_day_does_not_depend_on_how_many_days_were_asked_for() -> None:
    gen = TrafficGenerator(SMALL)
    short = gen.history(start=START, days=2)
    long = gen.history(start=START, days=4)
    pd.testing.assert_frame_equal(short, long.iloc[: len(short)].reset_index(drop=True))


def test_events_agree_with_history() -> None:
    gen = TrafficGenerator(SMALL)
    days = 3
    history = gen.history(start=START, days=days)
    stream = gen.events(start=START)
    head = list(itertools.islice(stream, len(history)))
    following = next(stream)
    assert following.transaction.event_time >= START + timedelta(days=days)
    assert all(isinstance(e.transaction, Transaction) for e in head)
    from_events = pd.DataFrame(
        {
            "transaction_id": [e.transaction.transaction_id for e in head],
            "event_time": _utc([e.transaction.event_time for e in head]),
            "card_id": [e.transaction.card_id for e in head],
            "merchant_id": [e.transaction.merchant_id for e in head],
            "amount": [e.transaction.amount for e in head],
            "currency": [e.transaction.currency for e in head],
            "mcc": [e.transaction.mcc for e in head],
            "channel": [e.transaction.channel for e in head],
            "country": [e.transaction.country for e in head],
            "is_fraud": np.array([e.is_fraud for e in head], dtype=np.int8),
            "fraud_scenario": [e.fraud_scenario for e in head],
            "label_time": _utc([e.label_time for e in head]),
        }
    )
    pd.testing.assert_frame_equal(from_events, history, check_dtype=False)
    assert history["is_fraud"].sum() > 0


def test_ground_truth_never_inside_the_transaction() -> None:
    gen = TrafficGenerator(SMALL)
    frauds = [e for e in itertools.islice(gen.events(start=START), 20_000) if e.is_fraud]
    assert frauds
    raw = TransactionCodec().encode(frauds[0].transaction)
    assert b"fraud" not in raw
    assert "is_fraud" not in Transaction.__struct_fields__


def test_ids_never_look_like_card_numbers() -> None:
    df = TrafficGenerator(SimulationConfig(cards=3000, merchants=300)).history(start=START, days=2)
    for column in ("card_id", "merchant_id", "transaction_id"):
        values = df[column].unique()
        assert not any(looks_like_pan(v) for v in values), column
    assert df["card_id"].str.fullmatch(r"card_[0-9a-f]{12}").all()
    assert df["merchant_id"].str.fullmatch(r"merch_[0-9a-f]{10}").all()
    assert df["transaction_id"].str.fullmatch(r"tx_[0-9a-f]{8}_[0-9a-f]{8}").all()


def test_daytime_busier_than_night_and_night_not_empty() -> None:
    df = TrafficGenerator(SimulationConfig(cards=1000, merchants=100)).history(start=START, days=3)
    legit_hours = df.loc[df["is_fraud"] == 0, "event_time"].dt.hour
    night = (legit_hours < 6).mean()
    assert 0.01 < night < 0.08
    assert (legit_hours.between(9, 20)).mean() > 0.6


def test_start_off_midnight_keeps_the_daily_curve() -> None:
    start = datetime(2024, 3, 1, 13, 37, 12, 345_000, tzinfo=UTC)
    df = TrafficGenerator(SimulationConfig(cards=1000, merchants=100)).history(start=start, days=2)
    assert df["event_time"].min() >= pd.Timestamp(start)
    assert df["event_time"].max() < pd.Timestamp(start + timedelta(days=2))
    assert (df["event_time"].dt.hour < 6).mean() < 0.08


def test_expected_tx_per_day_matches_the_traffic() -> None:
    gen = TrafficGenerator(SimulationConfig(cards=1000, merchants=100))
    per_day = len(gen.history(start=START, days=4)) / 4
    assert per_day == pytest.approx(gen.expected_tx_per_day, rel=0.05)
    assert gen.expected_tx_per_day == pytest.approx(3.0 * 1000, rel=0.15)


def test_progress_called_after_each_day() -> None:
    calls: list[tuple[int, int]] = []
    TrafficGenerator(SMALL).history(
        start=START, days=3, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_zero_days_is_an_empty_frame_with_the_columns() -> None:
    df = TrafficGenerator(SMALL).history(start=START, days=0)
    assert len(df) == 0
    assert tuple(df.columns) == HISTORY_COLUMNS
    assert str(df["event_time"].dtype) == "datetime64[ns, UTC]"


def test_naive_start_is_refused() -> None:
    with pytest.raises(SimulatorError, match="no timezone"):
        TrafficGenerator(SMALL).history(start=datetime(2024, 3, 1), days=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [("cards", 0), ("merchants", -1), ("seed", -3), ("stolen_card_rate", 2.0)],
)
def test_config_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(SimulationConfigError, match=field):
        SimulationConfig(**{field: value})  # type: ignore[arg-type]
