"""The three fraud scenarios have the shape they claim, at a realistic overall rate."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from simulator import FRAUD_SCENARIOS, SimulationConfig, TrafficGenerator

START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return TrafficGenerator(SimulationConfig()).history(start=START, days=30)


def _legit(history: pd.DataFrame) -> pd.DataFrame:
    return history[history["is_fraud"] == 0]


def _scenario(history: pd.DataFrame, name: str) -> pd.DataFrame:
    return history[history["fraud_scenario"] == name]


def test_fraud_rate_and_every_scenario_present(history: pd.DataFrame) -> None:
    assert 0.005 <= history["is_fraud"].mean() <= 0.015
    counts = history.loc[history["is_fraud"] == 1, "fraud_scenario"].value_counts()
    assert set(counts.index) == set(FRAUD_SCENARIOS) - {"none"}
    assert (counts / counts.sum()).min() > 0.15  # no scenario is a rounding error
    assert ((history["fraud_scenario"] == "none") == (history["is_fraud"] == 0)).all()


def test_label_time_one_to_ten_days_after_fraud_and_missing_for_legit(
    history: pd.DataFrame,
) -> None:
    fraud = history[history["is_fraud"] == 1]
    delay_days = (fraud["label_time"] - fraud["event_time"]).dt.total_seconds() / 86_400
    assert delay_days.between(1, 10).all()
    assert _legit(history)["label_time"].isna().all()


def test_card_testing_is_tiny_amounts_then_a_large_one_within_the_hour(
    history: pd.DataFrame,
) -> None:
    testing = _scenario(history, "card_testing")
    assert (testing["channel"] == "online").all()
    tiny = testing["amount"].between(0.5, 2.0)
    large = testing["amount"].between(200.0, 2000.0)
    assert (tiny | large).all()
    assert tiny.sum() >= 3 * large.sum()
    # An attack that began before the window shows only its tail: skip the first hour.
    settled = testing["event_time"] >= pd.Timestamp(START) + pd.Timedelta(hours=1)
    assert (large & settled).sum() > 20
    for _, row in testing[large & settled].iterrows():
        same_card = testing[(testing["card_id"] == row["card_id"]) & tiny]
        lag = row["event_time"] - same_card["event_time"]
        before = same_card[(lag > pd.Timedelta(0)) & (lag <= pd.Timedelta(hours=1))]
        assert 3 <= len(before) <= 10 * 2  # two attacks on one card can overlap, rarely
        burst = before["event_time"].max() - before["event_time"].min()
        assert burst <= pd.Timedelta(minutes=5) or len(before) > 10


def test_stolen_card_spends_far_above_the_card_median_elsewhere(history: pd.DataFrame) -> None:
    stolen = _scenario(history, "stolen_card")
    legit = _legit(history)
    median = legit.groupby("card_id")["amount"].median()
    ratio = stolen["amount"] / stolen["card_id"].map(median)
    assert ratio.median() > 3.0
    assert (ratio > 1.5).mean() > 0.9
    assert (stolen["channel"] == "online").mean() > 0.5
    # Never the card's usual merchants; rarely one it happened to visit once this month.
    visits = legit.groupby(["card_id", "merchant_id"]).size()
    pairs = list(zip(stolen["card_id"], stolen["merchant_id"], strict=True))
    regular = {pair for pair, count in visits.items() if count >= 3}
    assert sum(pair in regular for pair in pairs) / len(pairs) < 0.02
    assert sum(pair in visits.index for pair in pairs) / len(pairs) < 0.15
    # Several frauds per theft, within three days: split a card's frauds at gaps of 3 days.
    ordered = stolen.sort_values(["card_id", "event_time"])
    new_card = ordered["card_id"] != ordered["card_id"].shift()
    gap = ordered["event_time"].diff() > pd.Timedelta(days=3)
    theft = (new_card | gap).cumsum()
    per_theft = ordered.groupby(theft)["event_time"].agg(["count", "min", "max"])
    assert per_theft["count"].median() >= 3
    assert ((per_theft["max"] - per_theft["min"]) <= pd.Timedelta(days=6)).all()
    # The holder keeps paying as usual meanwhile.
    assert set(stolen["card_id"]) <= set(legit["card_id"])


def test_compromised_merchant_frauds_concentrate_on_a_few_merchants(
    history: pd.DataFrame,
) -> None:
    compromised = _scenario(history, "compromised_merchant")
    merchants = compromised["merchant_id"].unique()
    assert 1 <= len(merchants) <= 12
    assert compromised["card_id"].nunique() > 10  # many customers hit at each merchant
    for merchant in merchants:
        at_merchant = history[history["merchant_id"] == merchant]
        frauds = at_merchant[at_merchant["fraud_scenario"] == "compromised_merchant"]
        first, last = frauds["event_time"].min(), frauds["event_time"].max()
        window = at_merchant[at_merchant["event_time"].between(first, last)]
        assert len(frauds) / len(window) > 0.4
        assert (frauds["event_time"].max() - frauds["event_time"].min()) <= pd.Timedelta(days=28)


def test_compromised_merchant_amounts_are_elevated(history: pd.DataFrame) -> None:
    compromised = _scenario(history, "compromised_merchant")
    legit = _legit(history)
    legit_median = (
        legit[legit["merchant_id"].isin(compromised["merchant_id"])]
        .groupby("merchant_id")["amount"]
        .median()
    )
    fraud_median = compromised.groupby("merchant_id")["amount"].median()
    assert (fraud_median / legit_median.loc[fraud_median.index]).median() > 1.1


def test_rates_are_configurable() -> None:
    quiet = SimulationConfig(
        cards=500,
        merchants=50,
        stolen_card_rate=0.0,
        compromised_merchant_rate=0.0,
        card_testing_rate=0.0,
    )
    df = TrafficGenerator(quiet).history(start=START, days=5)
    assert df["is_fraud"].sum() == 0
    only_testing = SimulationConfig(
        cards=500,
        merchants=50,
        stolen_card_rate=0.0,
        compromised_merchant_rate=0.0,
        card_testing_rate=0.01,
    )
    df = TrafficGenerator(only_testing).history(start=START, days=5)
    assert set(df.loc[df["is_fraud"] == 1, "fraud_scenario"]) == {"card_testing"}
