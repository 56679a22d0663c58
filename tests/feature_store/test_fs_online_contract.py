"""The contract every online backend passes, and the Redis key layout, pinned."""

from __future__ import annotations

import asyncio
import math
import struct
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import redis

from feature_store import CORE_FEATURE_SET
from feature_store.online import (
    LATENESS_MS,
    EntityRequest,
    LabelUpdate,
    MemoryOnlineStore,
    OnlineStore,
    RedisOnlineStore,
)
from feature_store.plan import AggSpec, EntityPlan, FeaturePlan
from tests.feature_store.scan_store import ScanStore

H = 3_600_000
CARD = EntityPlan(
    "card",
    (
        AggSpec("count", H, 0),
        AggSpec("sum", H, 0),
        AggSpec("max", H, 0),
        AggSpec("last_ts", H, 0),
        AggSpec("distinct", H, 0),
        AggSpec("seen", H, 0),
    ),
)
MERCHANT = EntityPlan("merchant", (AggSpec("count", 2 * H, H), AggSpec("fraud", 2 * H, H)))
PLANS = (CARD, MERCHANT)


_LOOP: dict[int, asyncio.Runner] = {}


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis_url: str) -> Iterator[OnlineStore]:
    """A store and one event loop for the whole test (a Redis client is bound to its loop)."""
    backend: OnlineStore = (
        MemoryOnlineStore() if request.param == "memory" else RedisOnlineStore(url=redis_url)
    )
    with asyncio.Runner() as runner:
        _LOOP[id(backend)] = runner
        yield backend
        runner.run(backend.close())
        del _LOOP[id(backend)]


def _run(store: OnlineStore, requests: Sequence[EntityRequest]) -> np.ndarray:
    return _LOOP[id(store)].run(store.read_update_batch(PLANS, requests))


def _labels(store: OnlineStore, labels: Sequence[LabelUpdate]) -> int:
    return _LOOP[id(store)].run(store.apply_labels(PLANS, labels))


def _card(who: str, ts: int, tx: str, amount: float = 10.0, merchant: str = "m1") -> EntityRequest:
    return EntityRequest(
        plan=0, entity_id=who, ts_ms=ts, transaction_id=tx, amount=amount, counterparty_id=merchant
    )


def _merchant(who: str, ts: int, tx: str) -> EntityRequest:
    return EntityRequest(
        plan=1, entity_id=who, ts_ms=ts, transaction_id=tx, amount=1.0, counterparty_id="c"
    )


def _row(values: np.ndarray, width: int = 6) -> list[float]:
    return [round(float(v), 6) if not math.isnan(v) else math.nan for v in values[:width]]


def _m(values: np.ndarray) -> list[float]:
    """A merchant row: (count, frauds) in the delayed window (t - 2h, t - 1h]."""
    return _row(values, 2)


def test_prior_aggregates_and_same_batch_visibility(store: OnlineStore, unique: str) -> None:
    c = f"{unique}c"
    out = _run(
        store,
        [
            _card(c, 1000, "a", 5.0, "m1"),
            _card(c, 2000, "b", 7.5, "m2"),
            _card(c, 3000, "c", 1.0, "m1"),
        ],
    )
    first = _row(out[0])
    assert first[:3] == [0.0, 0.0, first[2]]
    assert math.isnan(first[2])
    assert math.isnan(first[3])  # no previous event
    assert _row(out[1]) == [1.0, 5.0, 5.0, 1000.0, 1.0, 0.0]
    assert _row(out[2]) == [2.0, 12.5, 7.5, 2000.0, 2.0, 1.0]  # m1 seen before


def test_window_bounds_are_open_below_and_closed_above(store: OnlineStore, unique: str) -> None:
    c = f"{unique}c"
    out = _run(store, [_card(c, 0, "old"), _card(c, 1, "new"), _card(c, H, "t")])
    assert out[2][0] == 1.0  # the event at exactly t - 1h is out, the one after it is in


def test_a_redelivered_transaction_sees_the_same_state(store: OnlineStore, unique: str) -> None:
    c = f"{unique}c"
    first = _run(store, [_card(c, 1000, "a"), _card(c, 2000, "b")])
    again = _run(store, [_card(c, 2000, "b")])
    assert _row(again[0]) == _row(first[1])
    later = _run(store, [_card(c, 3000, "c")])
    assert later[0][0] == 2.0  # "b" is counted once


def test_an_out_of_order_event_sees_only_its_past(store: OnlineStore, unique: str) -> None:
    c = f"{unique}c"
    out = _run(store, [_card(c, 5000, "b"), _card(c, 9000, "c"), _card(c, 7000, "late")])
    assert _row(out[2])[:2] == [1.0, 10.0]


def test_entities_are_isolated(store: OnlineStore, unique: str) -> None:
    out = _run(store, [_card(f"{unique}a", 1000, "x"), _card(f"{unique}b", 2000, "y")])
    assert out[1][0] == 0.0


def test_fraud_counts_only_labels_known_in_time(store: OnlineStore, unique: str) -> None:
    m = f"{unique}m"
    _run(store, [_merchant(m, 0, f"{unique}f"), _merchant(m, 10, f"{unique}ok")])
    # the label is known at 2h: a transaction at 1.5h must not count it, one at 2h must
    assert _labels(store, [LabelUpdate(f"{unique}f", True, 2 * H)]) == 1
    early, on_time = _run(store, [_merchant(m, H + H // 2, "p"), _merchant(m, 2 * H, "q")])
    assert _m(early) == [2.0, 0.0]  # both in (-0.5h, 0.5h]; the label is not known yet
    assert _m(on_time) == [1.0, 0.0]  # (0, 1h]: the fraud at 0 has just left the window
    assert _m(_run(store, [_merchant(m, H + 5, "r")])[0]) == [1.0, 0.0]
    assert _m(_run(store, [_merchant(m, 2 * H - 1, "s")])[0]) == [2.0, 0.0]  # 1 ms too early
    _labels(store, [LabelUpdate(f"{unique}ok", True, 0)])
    assert _m(_run(store, [_merchant(m, H + 10, "u")])[0]) == [2.0, 1.0]
    # a corrected verdict removes the fraud again
    _labels(store, [LabelUpdate(f"{unique}ok", False, 0)])
    assert _m(_run(store, [_merchant(m, H + 10, "v")])[0]) == [2.0, 0.0]


def test_a_label_for_an_unknown_transaction_matches_nothing(
    store: OnlineStore, unique: str
) -> None:
    assert _labels(store, [LabelUpdate(f"{unique}never-seen", True, 0)]) == 0


def test_window_state_matches_a_full_scan_under_disorder(store: OnlineStore, unique: str) -> None:
    """Each store's running window state against full scans: late events, redeliveries,
    ties, gaps longer than every window and bursts, on the core plan."""
    plans = tuple(FeaturePlan(CORE_FEATURE_SET).entities.values())
    rng = np.random.default_rng(5)
    n = 2500
    ts = np.sort(rng.integers(0, 50 * 86_400_000, n) // 60_000 * 60_000)
    # one event in ten arrives up to half a day early or late
    order = np.argsort(ts + rng.integers(-43_200_000, 43_200_000, n) * (rng.random(n) < 0.1))
    events = [
        (
            int(ts[i]),
            f"{unique}tx{i}",
            f"{unique}c{rng.integers(0, 12)}",
            f"{unique}m{rng.integers(0, 6)}",
            float(np.round(rng.lognormal(3, 1.2), 2)),
        )
        for i in order
    ]
    requests = [
        EntityRequest(
            plan=j,
            entity_id=(card, shop)[j],
            ts_ms=t,
            transaction_id=tx,
            amount=amount,
            counterparty_id=(shop, card)[j],
        )
        for t, tx, card, shop, amount in events
        for j in range(len(plans))
    ]
    redeliver = rng.random(len(requests) // 2) < 0.03

    async def run(store: OnlineStore) -> np.ndarray:
        rows = []
        for start in range(0, len(requests), 64):
            batch = requests[start : start + 64]
            rows.append(await store.read_update_batch(plans, batch))
            again = [r for k, r in enumerate(batch) if redeliver[(start + k) // 2]]
            if again:
                rows.append(await store.read_update_batch(plans, again))
        return np.vstack(rows)

    got = _LOOP[id(store)].run(run(store))
    expected = _LOOP[id(store)].run(run(ScanStore()))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_two_feature_sets_sharing_a_store_stay_exact(store: OnlineStore, unique: str) -> None:
    """After a model swap to another feature set, entities are served by other windows: a
    state built for the old set must be rebuilt from the log, never read as the new one."""
    core = tuple(FeaturePlan(CORE_FEATURE_SET).entities.values())
    # as many stateful windows as the core card plan, of other lengths: same state size
    spans = (5 * 60_000, 2 * H, 48 * H, 14 * 24 * H, 20 * 24 * H)
    other = (
        EntityPlan("card", tuple(AggSpec(k, w, 0) for w in spans for k in ("sum", "max", "seen"))),
    )
    rng = np.random.default_rng(9)
    reference = ScanStore()
    card = f"{unique}c"
    for step in range(12):
        plans = core if step % 3 else other  # other, core, core, other, ...
        t0 = step * 7 * H
        batch = [
            _card(card, t0 + k * 60_000, f"{unique}s{step}e{k}", float(rng.integers(1, 500)))
            for k in range(rng.integers(1, 5))
        ]
        got = _LOOP[id(store)].run(store.read_update_batch(plans, batch))
        expected = _LOOP[id(store)].run(reference.read_update_batch(plans, batch))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("store", ["redis"], indirect=True)
def test_redis_key_layout_is_pinned(store: OnlineStore, redis_url: str, unique: str) -> None:
    """Other systems read these keys: the exact bytes are part of the contract (fs4)."""
    _run(store, [_card(f"{unique}k", 1_700_000_000_123, "tx_1", 12.5, "m9")])
    _run(store, [_merchant(f"{unique}m", 1_700_000_000_123, f"{unique}tx_2")])
    _labels(store, [LabelUpdate(f"{unique}tx_2", True, 1_700_000_000_999)])
    client = redis.Redis.from_url(redis_url)
    log = f"fraud:fs4:log:card:{unique}k".encode()
    assert client.type(log) == b"zset"
    member = struct.pack(">ddI", 1_700_000_000_123, 12.5, zlib.crc32(b"m9")) + b"tx_1"
    assert client.zrange(log, 0, -1, withscores=True) == [(member, 1_700_000_000_123.0)]
    assert 0 < client.pttl(log) <= H + LATENESS_MS
    # one window with sums: its signature, the newest time, then count, sum and its
    # compensation, sum of squares and its compensation, max, oldest time, distinct merchants
    state = (1_700_000_000_123, 1, 12.5, 0, 156.25, 0, 12.5, 1_700_000_000_123, 1)
    win = f"fraud:fs4:win:card:{unique}k"
    signature = zlib.crc32(f"{H}:1".encode())  # one window that counts counterparties
    assert client.get(win) == struct.pack(">10d", signature, *state)
    assert 0 < client.pttl(win) <= H + LATENESS_MS
    party = f"fraud:fs4:party:card:{unique}k"
    assert client.hgetall(party) == {struct.pack(">BI", 1, zlib.crc32(b"m9")): b"1"}
    assert 0 < client.pttl(party) <= H + LATENESS_MS
    assert not client.exists("fraud:fs4:tx:tx_1:card")  # cards keep no fraud counts here
    frauds = f"fraud:fs4:frauds:merchant:{unique}m"
    assert client.hgetall(frauds) == {f"{unique}tx_2".encode(): b"1700000000123|1700000000999|1"}
    keep = 2 * H + LATENESS_MS
    index = f"fraud:fs4:tx:{unique}tx_2:merchant"
    assert client.get(index) == f"1700000000123|{keep}|1|{frauds}".encode()  # amount 1.0
    assert 0 < client.pttl(frauds) <= keep
    client.close()
