"""Consume ceiling on the embedded broker: how fast can anything drain ``transactions``?

    .venv/bin/python bench/consume_ceiling.py [--events 30000] [--json]

Pre-produces valid transactions to a fresh topic (2 partitions) of the embedded Tansu
broker, then drains them in this process with:

- ``bare``: an aiokafka ``getmany`` loop that only counts;
- ``processor``: ``getmany`` + :class:`stream.processor.BatchProcessor` (trained model,
  in-memory store and ledger) + an aiokafka producer whose sends are queued per batch and
  whose acknowledgements are gathered once per batch;
- ``processor_redis``: the same with the real Redis (``--redis-url``) store and ledger,
  as the stream benchmark's worker runs.

No faust: the gap between these and ``bench/stream.py``'s drain is faust's stream path.
Last line: JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, bench/ is first on sys.path and bench/stream.py shadows the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import msgspec  # noqa: E402
import redis  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from kafka import KafkaProducer  # noqa: E402

from batch_training.pipeline import PipelineOptions, run_training  # noqa: E402
from batch_training.registry import ModelRegistry  # noqa: E402
from embedded import EmbeddedBroker  # noqa: E402
from feature_store import CORE_FEATURE_SET, TransactionCodec  # noqa: E402
from feature_store.online import (  # noqa: E402
    MemoryOnlineStore,
    OnlineFeatureEngine,
    OnlineStore,
    RedisOnlineStore,
)
from simulator import SimulationConfig, TrafficGenerator  # noqa: E402
from stream.ledger import DecisionLedger, MemoryLedger, RedisLedger  # noqa: E402
from stream.processor import BatchProcessor, RawEvent  # noqa: E402
from stream.scoring import ServingModel, load_serving_model  # noqa: E402
from stream.topics import ensure_topics  # noqa: E402

__all__ = ["main"]

_STALL_S = 30.0  # nothing fetched for this long: the broker stalled (reported as consumed < n)


def _preproduce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        batch_size=512 * 1024,
        enable_idempotence=False,
        acks=1,
    )
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def _consumer(bootstrap: str, topic: str, group: str, max_records: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        max_poll_records=max_records,
    )


async def _bare(bootstrap: str, topic: str, n: int, max_records: int) -> dict[str, float]:
    consumer = _consumer(bootstrap, topic, "ceiling-bare", max_records)
    await consumer.start()
    try:
        seen, batches, began, last = 0, 0, 0.0, time.perf_counter()
        while seen < n and time.perf_counter() - last < _STALL_S:
            got = await consumer.getmany(timeout_ms=100, max_records=max_records)
            if not got:
                continue
            last = time.perf_counter()
            began = began or last
            for records in got.values():
                seen += len(records)
            batches += 1
        elapsed = last - began
        await consumer.commit()
    finally:
        await consumer.stop()
    return {
        "tps": round(seen / elapsed),
        "seconds": round(elapsed, 3),
        "batches": batches,
        "consumed": seen,
    }


async def _processed(
    bootstrap: str,
    topic: str,
    n: int,
    max_records: int,
    model: ServingModel,
    store: OnlineStore,
    ledger: DecisionLedger,
    group: str,
) -> dict[str, float]:
    processor = BatchProcessor(
        codec=TransactionCodec(),
        engine=OnlineFeatureEngine(feature_set=model.feature_set, store=store),
        model=model,
        fallback="review",
        deadline_s=5.0,
        ledger=ledger,
    )
    encode = msgspec.json.Encoder().encode
    consumer = _consumer(bootstrap, topic, group, max_records)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1024 * 1024, acks=1
    )
    await producer.start()
    await consumer.start()
    try:
        seen, batches, degraded, began, last = 0, 0, 0, 0.0, time.perf_counter()
        processing = 0.0
        while seen < n and time.perf_counter() - last < _STALL_S:
            got = await consumer.getmany(timeout_ms=100, max_records=max_records)
            if not got:
                continue
            t0 = time.perf_counter()
            began = began or t0
            batch = [
                RawEvent(r.value, r.timestamp / 1000.0, r.topic, r.partition, r.offset)
                for records in got.values()
                for r in records
            ]
            out = await processor.process(batch)
            processing += time.perf_counter() - t0
            futures = []
            for record in out.decisions:
                body = encode(record)
                futures.append(
                    await producer.send(f"{topic}.out", key=record.card_id.encode(), value=body)
                )
                degraded += record.degraded
            await asyncio.gather(*futures)
            await consumer.commit()
            seen += len(batch)
            batches += 1
            last = time.perf_counter()
        elapsed = last - began
    finally:
        await consumer.stop()
        await producer.stop()
        await ledger.close()
    return {
        "tps": round(seen / elapsed),
        "seconds": round(elapsed, 3),
        "batches": batches,
        "consumed": seen,
        "processor_share": round(processing / elapsed, 3),
        "degraded": degraded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--max-records", type=int, default=4_000)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
    )
    parser.add_argument(
        "--only-bare", action="store_true", help="skip the processing drains (e.g. for 200k)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    generator = TrafficGenerator(SimulationConfig(cards=5_000, merchants=500, seed=3))
    start = datetime.now(UTC) - timedelta(days=20)
    registry = ModelRegistry(work / "registry")
    run_training(
        generator.history(start=start, days=14),
        registry=registry,
        options=PipelineOptions(
            feature_set=CORE_FEATURE_SET, train_days=8, delay_days=2, test_days=4
        ),
    )
    model = load_serving_model(registry)
    codec = TransactionCodec()
    events = generator.events(start=start + timedelta(days=14))
    payloads = []
    for _ in range(args.events):
        tx = next(events).transaction
        payloads.append((tx.card_id.encode(), codec.encode(tx)))
    redis.Redis.from_url(args.redis_url).flushdb()
    result: dict[str, Any] = {"events": args.events, "max_records": args.max_records}
    with EmbeddedBroker() as broker:
        topic = "ceiling-transactions"
        ensure_topics(broker.bootstrap, [topic, f"{topic}.out"], partitions=2)
        began = time.perf_counter()
        _preproduce(broker.bootstrap, topic, payloads)
        result["preproduce_tps"] = round(args.events / (time.perf_counter() - began))
        n, mr = args.events, args.max_records
        result["bare"] = asyncio.run(_bare(broker.bootstrap, topic, n, mr))
        print(json.dumps(result), file=sys.stderr, flush=True)
        if args.only_bare:
            print(json.dumps(result))
            return
        result["processor"] = asyncio.run(
            _processed(
                broker.bootstrap, topic, n, mr, model, MemoryOnlineStore(), MemoryLedger(), "c-m"
            )
        )
        print(json.dumps(result), file=sys.stderr, flush=True)

        async def with_redis() -> dict[str, float]:
            # redis clients bind to the loop they first run on: build them inside it
            store = RedisOnlineStore(url=args.redis_url)
            try:
                return await _processed(
                    broker.bootstrap,
                    topic,
                    n,
                    mr,
                    model,
                    store,
                    RedisLedger(url=args.redis_url),
                    "c-r",
                )
            finally:
                await store.close()

        result["processor_redis"] = asyncio.run(with_redis())
    if not args.json:
        print(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
