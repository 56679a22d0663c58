"""Parity: replaying a history through each online backend equals the offline engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import redis

from feature_store import CORE_FEATURE_SET, canonical_order, compute_offline_features
from feature_store.materialize import history_transactions
from feature_store.online import (
    MemoryOnlineStore,
    OnlineFeatureEngine,
    OnlineStore,
    RedisOnlineStore,
)


def _tied_history(unique: str) -> pd.DataFrame:
    """Random events on a coarse clock: many exact ties, bursts and long gaps."""
    rng = np.random.default_rng(3)
    n = 3000
    seconds = np.sort(rng.integers(0, 45 * 86_400, n)) // 60 * 60
    return pd.DataFrame(
        {
            "transaction_id": [f"{unique}tx{i:05d}" for i in rng.permutation(n)],
            "event_time": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s"),
            "card_id": rng.choice([f"{unique}c{i}" for i in range(40)], n),
            "merchant_id": rng.choice([f"{unique}m{i}" for i in range(15)], n),
            "amount": np.round(rng.lognormal(3, 1.2, n), 2),
        }
    )


def _replay(history: pd.DataFrame, store: OnlineStore, batch: int) -> pd.DataFrame:
    engine = OnlineFeatureEngine(feature_set=CORE_FEATURE_SET, store=store)

    async def run() -> np.ndarray:
        rows = [
            await engine.compute_batch(chunk)
            for chunk in history_transactions(history, chunk=batch)
        ]
        await store.close()
        return np.vstack(rows)

    ordered_index = history.index[canonical_order(history)]
    online = pd.DataFrame(asyncio.run(run()), index=ordered_index, columns=CORE_FEATURE_SET.names)
    return online.loc[history.index]


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


StoreFactory = Callable[[], OnlineStore]


@pytest.fixture(params=["memory", "redis"])
def store_factory(request: pytest.FixtureRequest, redis_url: str) -> StoreFactory:
    if request.param == "memory":
        return MemoryOnlineStore
    return lambda: RedisOnlineStore(url=redis_url)


@pytest.mark.parametrize("batch", [1, 97])
def test_tied_history_parity(store_factory: StoreFactory, unique: str, batch: int) -> None:
    history = _tied_history(f"{unique}{batch}-")
    _assert_same(
        compute_offline_features(CORE_FEATURE_SET, history),
        _replay(history, store_factory(), batch),
    )


def test_simulated_history_parity(
    store_factory: StoreFactory, small_history: pd.DataFrame, unique: str
) -> None:
    history = small_history.iloc[:6000].copy()
    history["card_id"] = unique + history["card_id"]
    history["merchant_id"] = unique + history["merchant_id"]
    offline = compute_offline_features(CORE_FEATURE_SET, history)
    _assert_same(offline, _replay(history, store_factory(), 256))
    assert offline["card_tx_count_7d"].max() > 3  # the windows really see history


def test_offline_never_sees_a_later_event(unique: str) -> None:
    """Adding an event after t changes no feature of any row at or before t."""
    history = _tied_history(unique)
    cutoff = history["event_time"].quantile(0.5)
    early = history[history["event_time"] <= cutoff]
    full = compute_offline_features(CORE_FEATURE_SET, history).loc[early.index]
    alone = compute_offline_features(CORE_FEATURE_SET, early)
    pd.testing.assert_frame_equal(full, alone)


def test_redis_state_expires(redis_url: str, unique: str) -> None:
    history = _tied_history(unique).iloc[:200]
    _replay(history, RedisOnlineStore(url=redis_url), 50)
    client = redis.Redis.from_url(redis_url)
    keys = client.keys(f"fraud:fs1:*:{unique}*")
    assert keys
    ttls = [client.pttl(k) for k in keys]
    assert all(0 < ttl <= (30 * 86_400 + 3600) * 1000 for ttl in ttls)
    client.close()
