"""Parity: replaying a history through each online backend equals the offline engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_store import CORE_FEATURE_SET, compute_offline_features
from feature_store.catalogue import EXTENDED_FEATURE_SET, HANDBOOK_FEATURE_SET
from feature_store.columns import apply_column_preset
from feature_store.definitions import (
    DAY_S,
    FeatureSet,
    FraudAmountMean,
    FraudRate,
    KnownFraudRun,
)
from feature_store.materialize import replay_history
from feature_store.online import (
    MemoryOnlineStore,
    OnlineFeatureEngine,
    OnlineStore,
    RedisOnlineStore,
)

StoreFactory = Callable[[], OnlineStore]


def _tied_history(unique: str) -> pd.DataFrame:
    """Random events on a coarse clock: many exact ties, bursts, long gaps, late labels."""
    rng = np.random.default_rng(3)
    n = 3000
    seconds = np.sort(rng.integers(0, 45 * 86_400, n)) // 60 * 60
    times = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s")
    fraud = rng.random(n) < 0.05
    delay = pd.to_timedelta(rng.integers(0, 12 * 86_400, n), unit="s")
    return pd.DataFrame(
        {
            "transaction_id": [f"{unique}tx{i:05d}" for i in rng.permutation(n)],
            "event_time": times,
            "card_id": rng.choice([f"{unique}c{i}" for i in range(40)], n),
            "merchant_id": rng.choice([f"{unique}m{i}" for i in range(15)], n),
            "amount": np.round(rng.lognormal(3, 1.2, n), 2),
            "channel": rng.choice(["online", "pos"], n),
            "is_fraud": fraud.astype(np.int8),
            "label_time": pd.Series(times + delay).where(fraud),
        }
    )


def _replay(
    feature_set: FeatureSet, history: pd.DataFrame, store: OnlineStore, batch: int
) -> pd.DataFrame:
    engine = OnlineFeatureEngine(feature_set=feature_set, store=store)

    async def run() -> pd.DataFrame:
        parts = []
        for step in replay_history(history, chunk=batch):
            if isinstance(step, list):
                await engine.apply_labels(step)
                continue
            index, transactions = step
            values = await engine.compute_batch(transactions)
            parts.append(pd.DataFrame(values, index=index, columns=list(feature_set.names)))
        await store.close()
        return pd.concat(parts).loc[history.index]

    return asyncio.run(run())


def _assert_same(offline: pd.DataFrame, online: pd.DataFrame) -> None:
    assert list(offline.columns) == list(online.columns)
    for column in offline.columns:
        np.testing.assert_allclose(
            online[column].to_numpy(),
            offline[column].to_numpy(),
            rtol=1e-9,
            atol=1e-9,
            err_msg=f"feature {column} differs between the engines",
        )


@pytest.fixture(params=["memory", "redis"])
def store_factory(request: pytest.FixtureRequest, redis_url: str) -> StoreFactory:
    if request.param == "memory":
        return MemoryOnlineStore
    return lambda: RedisOnlineStore(url=redis_url)


@pytest.mark.parametrize("batch", [1, 97])
def test_tied_history_parity(store_factory: StoreFactory, unique: str, batch: int) -> None:
    history = _tied_history(f"{unique}{batch}-")
    offline = compute_offline_features(CORE_FEATURE_SET, history)
    _assert_same(offline, _replay(CORE_FEATURE_SET, history, store_factory(), batch))
    assert offline["merchant_fraud_rate_30d_delay7d"].max() > 0  # labels really count


def test_simulated_history_parity(
    store_factory: StoreFactory, small_history: pd.DataFrame, unique: str
) -> None:
    history = small_history.copy()
    history["card_id"] = unique + history["card_id"]
    history["merchant_id"] = unique + history["merchant_id"]
    offline = compute_offline_features(CORE_FEATURE_SET, history)
    _assert_same(offline, _replay(CORE_FEATURE_SET, history, store_factory(), 256))
    assert offline["card_tx_count_7d"].max() > 3  # the windows really see history


def test_handbook_slice_parity(
    store_factory: StoreFactory, unique: str, handbook_dir: Path
) -> None:
    raw = pd.read_parquet(handbook_dir / "transactions_raw.parquet").iloc[:25_000]
    history = apply_column_preset(raw, "handbook")
    history["card_id"] = unique + history["card_id"].astype(str)
    history["merchant_id"] = unique + history["merchant_id"].astype(str)
    offline = compute_offline_features(HANDBOOK_FEATURE_SET, history)
    _assert_same(offline, _replay(HANDBOOK_FEATURE_SET, history, store_factory(), 256))


# label features with short windows, so the 45-day tied history exercises them often
LABEL_SET = FeatureSet(
    name="labels",
    version=1,
    features=tuple(
        f
        for entity in ("card", "merchant")
        for f in (
            KnownFraudRun(entity=entity, measure="length", horizon_s=6 * DAY_S, delay_s=DAY_S),
            KnownFraudRun(entity=entity, measure="days", horizon_s=6 * DAY_S, delay_s=DAY_S),
            FraudAmountMean(entity=entity, window_s=3 * DAY_S, delay_s=DAY_S),
            FraudRate(entity=entity, window_s=3 * DAY_S, delay_s=DAY_S),
        )
    ),
)


def _with_compromised_merchant(history: pd.DataFrame, merchant: str) -> pd.DataFrame:
    """Every payment at ``merchant`` is a fraud from day 10 to day 25: long runs."""
    day = (history["event_time"] - history["event_time"].min()).dt.days
    hit = (history["merchant_id"] == merchant) & day.between(10, 25)
    out = history.copy()
    out.loc[hit, "is_fraud"] = 1
    late = pd.Series(pd.to_timedelta(np.arange(len(out)) % 7, unit="h"), index=out.index)
    out.loc[hit, "label_time"] = out.loc[hit, "event_time"] + late[hit]
    return out


@pytest.mark.parametrize("batch", [1, 97])
def test_label_feature_parity(store_factory: StoreFactory, unique: str, batch: int) -> None:
    prefix = f"{unique}{batch}-"
    history = _with_compromised_merchant(_tied_history(prefix), f"{prefix}m3")
    offline = compute_offline_features(LABEL_SET, history)
    _assert_same(offline, _replay(LABEL_SET, history, store_factory(), batch))
    assert offline["merchant_fraud_run_length_6d_delay1d"].max() > 20  # long runs happen
    assert offline["card_fraud_run_length_6d_delay1d"].max() >= 1
    assert offline["merchant_fraud_amount_mean_3d_delay1d"].notna().mean() > 0.1


def test_extended_set_parity(store_factory: StoreFactory, unique: str) -> None:
    history = _with_compromised_merchant(_tied_history(f"{unique}x-"), f"{unique}x-m3")
    offline = compute_offline_features(EXTENDED_FEATURE_SET, history)
    _assert_same(offline, _replay(EXTENDED_FEATURE_SET, history, store_factory(), 97))
