"""Feature-store benchmark: online read+update against real Redis, and the offline engine.

    .venv/bin/python bench/features.py [--json] [--redis-url URL]

Uses Redis database 14 of the loopback server (REDIS_URL or --redis-url), flushed first.
The state is warmed with a simulated history so windows hold realistic numbers of events.
The naive layout runs in the same process against the same server: one Redis command per
feature per event (the way a first implementation talks to Redis). Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis
import redis.asyncio as aioredis

from feature_store import CORE_FEATURE_SET, Transaction, compute_offline_features
from feature_store.catalogue import HANDBOOK_FEATURE_SET
from feature_store.columns import apply_column_preset
from feature_store.definitions import WindowAggregate
from feature_store.materialize import materialize_history
from feature_store.online import (
    MemoryOnlineStore,
    OnlineFeatureEngine,
    RedisOnlineStore,
    epoch_ms,
)
from simulator import SimulationConfig, TrafficGenerator

HANDBOOK = Path(__file__).resolve().parents[2] / "shared/datasets/handbook/transactions_raw.parquet"


def _percentiles(samples_us: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples_us)
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p99": round(float(np.percentile(a, 99)), 1),
    }


class NaiveRedisFeatures:
    """One command per feature per event, then one write per entity: the baseline."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._windows = [f for f in CORE_FEATURE_SET.features if isinstance(f, WindowAggregate)]

    async def warm(self, history: pd.DataFrame) -> None:
        pipe = self._client.pipeline(transaction=False)
        ts = history["event_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
        for row, t in zip(history.itertuples(), ts, strict=True):
            member = f"{row.transaction_id}|{row.amount}"
            pipe.zadd(f"naive:card:{row.card_id}", {member: int(t)})
            pipe.zadd(f"naive:merchant:{row.merchant_id}", {member: int(t)})
            if len(pipe) >= 10_000:
                await pipe.execute()
        await pipe.execute()

    async def compute(self, tx: Transaction) -> list[float]:
        ts = epoch_ms(tx.event_time)
        values: list[float] = []
        for f in self._windows:
            key = f"naive:{f.entity}:{tx.card_id if f.entity == 'card' else tx.merchant_id}"
            lo, hi = ts - (f.delay_s + f.window_s) * 1000, ts - f.delay_s * 1000
            if f.aggregation == "count":
                values.append(float(await self._client.zcount(key, f"({lo}", hi)))
            else:
                members = await self._client.zrangebyscore(key, f"({lo}", hi)
                amounts = [float(str(m, "utf-8").split("|")[1]) for m in members] or [0.0]  # type: ignore[arg-type]
                values.append(sum(amounts) if f.aggregation == "sum" else max(amounts))
        for entity, entity_id in (("card", tx.card_id), ("merchant", tx.merchant_id)):
            key = f"naive:{entity}:{entity_id}"
            await self._client.zadd(key, {f"{tx.transaction_id}|{tx.amount}": ts})
        return values


async def _online(
    url: str, history: pd.DataFrame, live: list[Transaction], quick: bool
) -> dict[str, Any]:
    store = RedisOnlineStore(url=url, timeout_s=30.0)  # the warm-up calls are large
    started = time.perf_counter()
    await materialize_history(history, feature_set=CORE_FEATURE_SET, store=store)
    warm_s = time.perf_counter() - started
    engine = OnlineFeatureEngine(feature_set=CORE_FEATURE_SET, store=store)
    cursor = 0

    def take(n: int) -> list[Transaction]:
        nonlocal cursor
        out = live[cursor : cursor + n]
        cursor += n
        return out

    batch1: list[float] = []
    for _ in range(300 if quick else 3000):
        batch = take(1)
        t0 = time.perf_counter()
        await engine.compute_batch(batch)
        batch1.append((time.perf_counter() - t0) * 1e6)
    per_batch: list[float] = []
    rows = 0
    stats = aioredis.Redis.from_url(url)
    await stats.config_resetstat()  # server-side cost of the batches below, per command
    for _ in range(10 if quick else 60):
        batch = take(256)
        t0 = time.perf_counter()
        await engine.compute_batch(batch)
        per_batch.append((time.perf_counter() - t0) * 1e6)
        rows += len(batch)
    commands = await stats.info("commandstats")
    await stats.aclose()
    await store.close()
    script = commands.get("cmdstat_evalsha", {"usec": 0})
    inner = {
        name.removeprefix("cmdstat_"): value
        for name, value in commands.items()
        if name not in ("cmdstat_evalsha", "cmdstat_config|resetstat")
    }

    naive_client = aioredis.Redis.from_url(url)
    naive = NaiveRedisFeatures(naive_client)
    await naive.warm(history)  # the same state as ours, loaded in bulk (not measured)
    naive_us: list[float] = []
    for tx in take(300 if quick else 2000):
        t0 = time.perf_counter()
        await naive.compute(tx)
        naive_us.append((time.perf_counter() - t0) * 1e6)
    await naive_client.aclose()
    batched_tps = rows / (sum(per_batch) / 1e6)
    naive_tps = len(naive_us) / (sum(naive_us) / 1e6)
    return {
        "warm_rows": len(history),
        "warm_rows_per_s": round(len(history) / warm_s),
        "batch_1_us": _percentiles(batch1),
        "batch_1_events_per_s": round(len(batch1) / (sum(batch1) / 1e6)),
        "batch_256_us_per_event": {
            k: round(v / 256, 2) for k, v in _percentiles(per_batch).items()
        },
        "batch_256_events_per_s": round(batched_tps),
        "batch_256_redis_server": {
            "script_us_per_event": round(script["usec"] / rows, 1),
            "commands_per_event": round(sum(v["calls"] for v in inner.values()) / rows, 1),
            "command_us_per_event": round(sum(v["usec"] for v in inner.values()) / rows, 1),
            "top_commands_us_per_event": dict(
                sorted(
                    ((k, round(v["usec"] / rows, 1)) for k, v in inner.items()),
                    key=lambda kv: -kv[1],
                )[:5]
            ),
        },
        "naive_us": _percentiles(naive_us),
        "naive_events_per_s": round(naive_tps),
        "ratio_batch_256_vs_naive": round(batched_tps / naive_tps, 1),
    }


async def _memory(history: pd.DataFrame, live: list[Transaction], quick: bool) -> dict[str, Any]:
    """The embedded in-memory store on the same state and events, for comparison."""
    store = MemoryOnlineStore()
    await materialize_history(history, feature_set=CORE_FEATURE_SET, store=store)
    engine = OnlineFeatureEngine(feature_set=CORE_FEATURE_SET, store=store)
    per_batch: list[float] = []
    for i in range(10 if quick else 60):
        t0 = time.perf_counter()
        await engine.compute_batch(live[i * 256 : (i + 1) * 256])
        per_batch.append((time.perf_counter() - t0) * 1e6)
    return {
        "batch_256_us_per_event": {
            k: round(v / 256, 2) for k, v in _percentiles(per_batch).items()
        },
        "batch_256_events_per_s": round(len(per_batch) * 256 / (sum(per_batch) / 1e6)),
    }


def _offline() -> dict[str, Any]:
    raw = pd.read_parquet(HANDBOOK)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        compute_offline_features(HANDBOOK_FEATURE_SET, apply_column_preset(raw, "handbook"))
        times.append(time.perf_counter() - t0)
    median = float(np.median(times))
    return {
        "handbook_rows": len(raw),
        "seconds_median": round(median, 2),
        "rows_per_s": round(len(raw) / median),
    }


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    online = result["online_redis"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    labels = ["naive\n(1 cmd/feature)", "batch 1", "batch 256"]
    rates = [
        online["naive_events_per_s"],
        online["batch_1_events_per_s"],
        online["batch_256_events_per_s"],
    ]
    left.bar(labels, rates, color=["#999999", "#6a9fd4", "#1f5fa0"])
    left.set_yscale("log")
    left.set_ylabel("events / s (log)")
    left.set_title("Online read + update, real Redis")
    for i, rate in enumerate(rates):
        left.annotate(f"{rate:,}", (i, rate), ha="center", va="bottom")
    per_event = [online["naive_us"], online["batch_1_us"], online["batch_256_us_per_event"]]
    x = np.arange(3)
    right.bar(x - 0.2, [p["p50"] for p in per_event], 0.4, label="p50")
    right.bar(x + 0.2, [p["p99"] for p in per_event], 0.4, label="p99")
    right.set_xticks(x, labels)
    right.set_yscale("log")
    right.set_ylabel("µs per event (log)")
    right.set_title("Latency per event")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke test)")
    parser.add_argument("--plot", type=Path, default=Path("bench/results/features.png"))
    args = parser.parse_args()
    redis.Redis.from_url(args.redis_url).flushdb()
    generator = TrafficGenerator(SimulationConfig(cards=2000, merchants=200, seed=7))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    days = 8 if args.quick else 30
    history = generator.history(start=start, days=days)
    live_events = generator.events(start=start + timedelta(days=days))
    live = [next(live_events).transaction for _ in range(30_000)]
    result = {
        "machine": {"cores": os.cpu_count()},
        "online_redis": asyncio.run(_online(args.redis_url, history, live, args.quick)),
        "online_memory": asyncio.run(_memory(history, live, args.quick)),
        "offline": _offline(),
    }
    _plot(result, args.plot)
    if not args.json:
        print(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
