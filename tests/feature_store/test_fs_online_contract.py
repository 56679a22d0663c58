"""The contract every online backend passes, and the Redis key layout, pinned."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import redis

from feature_store.online import (
    EntityEvent,
    History,
    MemoryOnlineStore,
    OnlineStore,
    RedisOnlineStore,
    entity_key,
)
from feature_store.online.base import LATENESS_MS

HOUR = 3_600_000


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis_url: str) -> OnlineStore:
    return MemoryOnlineStore() if request.param == "memory" else RedisOnlineStore(url=redis_url)


def _run(store: OnlineStore, events: Sequence[EntityEvent]) -> list[History]:
    async def go() -> list[History]:
        try:
            return await store.read_update_batch(events)
        finally:
            await store.close()

    return asyncio.run(go())


def _event(key: str, ts_ms: int, tx: str, amount: float = 10.0, horizon: int = HOUR) -> EntityEvent:
    return EntityEvent(key=key, ts_ms=ts_ms, transaction_id=tx, amount=amount, horizon_ms=horizon)


def test_reads_before_it_writes_and_sees_earlier_events_of_the_batch(
    store: OnlineStore, unique: str
) -> None:
    key = entity_key("card", f"{unique}c")
    out = _run(
        store,
        [_event(key, 1000, "a", 1.0), _event(key, 2000, "b", 2.0), _event(key, 3000, "c", 3.0)],
    )
    assert [len(h) for h in out] == [0, 1, 2]
    assert [(e.ts_ms, e.transaction_id, e.amount) for e in out[2]] == [
        (1000, "a", 1.0),
        (2000, "b", 2.0),
    ]


def test_a_duplicate_transaction_is_logged_once(store: OnlineStore, unique: str) -> None:
    key = entity_key("card", f"{unique}c")
    out = _run(store, [_event(key, 1000, "a"), _event(key, 1000, "a"), _event(key, 2000, "b")])
    assert [e.transaction_id for e in out[2]] == ["a"]


def test_events_beyond_the_horizon_are_not_returned(store: OnlineStore, unique: str) -> None:
    key = entity_key("card", f"{unique}c")
    out = _run(
        store, [_event(key, 0, "old"), _event(key, HOUR - 1, "mid"), _event(key, 2 * HOUR, "new")]
    )
    assert [e.transaction_id for e in out[2]] == []

    late = _run(store, [_event(key, 2 * HOUR - 1, "late")])  # out of order: [t - horizon, t]
    assert [e.transaction_id for e in late[0]] == ["mid"]


def test_out_of_order_event_sees_only_the_past(redis_url: str, unique: str) -> None:
    for store_factory in (MemoryOnlineStore, lambda: RedisOnlineStore(url=redis_url)):
        store: OnlineStore = store_factory()
        key = entity_key("card", f"{unique}{type(store).__name__}")
        out = _run(
            store, [_event(key, 5000, "b"), _event(key, 9000, "c"), _event(key, 7000, "late")]
        )
        assert [e.transaction_id for e in out[2]] == ["b"]


def test_entities_are_isolated(store: OnlineStore, unique: str) -> None:
    a, b = entity_key("card", f"{unique}a"), entity_key("merchant", f"{unique}a")
    out = _run(store, [_event(a, 1000, "x"), _event(b, 1000, "x"), _event(a, 2000, "y")])
    assert [len(h) for h in out] == [0, 0, 1]


def test_redis_key_layout_is_pinned(redis_url: str, unique: str) -> None:
    """Other systems read these keys: the exact bytes are part of the contract (fs1)."""
    assert entity_key("card", "card_ab") == "fraud:fs1:card:card_ab"
    _run(
        RedisOnlineStore(url=redis_url),
        [_event(entity_key("card", f"{unique}k"), 1_700_000_000_123, "tx_1", 12.5)],
    )
    client = redis.Redis.from_url(redis_url)
    key = f"fraud:fs1:card:{unique}k".encode()
    assert client.type(key) == b"zset"
    assert client.zrange(key, 0, -1, withscores=True) == [(b"tx_1|12.5", 1_700_000_000_123.0)]
    assert 0 < client.pttl(key) <= HOUR + LATENESS_MS
    client.close()
