"""Consume ceiling on the embedded broker: how fast can anything drain ``transactions``?

    .venv/bin/python bench/consume_ceiling.py [--events 30000] [--max-records 1000]
        [--runs 3] [--stores memory,redis] [--json]

Pre-produces valid transactions to a topic (2 partitions) of the embedded Tansu broker,
then drains them in this process with:

- ``bare``: an aiokafka ``getmany`` loop that only counts;
- ``batched``: the ``FRAUD_CONSUMER=batched`` worker itself (:class:`stream.batched.
  BatchedWorker`: the pipeline, the record-batch outbox, acks then commit), set up as
  ``fraud stream`` sets it up (compiled champion, XGBoost on ``FRAUD_XGBOOST_THREADS``,
  the garbage collector tuned), with the in-memory store and ledger;
- ``batched_redis``: the same with the real Redis (``--redis-url``) store and ledger.

Each drain is timed from its first batch to the top of the loop after its last one (sent,
acknowledged, committed), and split per event (``us_per_event``) into the online store's
time, the rest of the pipeline (decode, scoring, policy, reasons, records) and Kafka plus
the loop; ``cpu`` is this process's CPU per event (steadier than wall time when other jobs
share the cores) and ``gc`` the garbage collector's share of it. No faust and no child
process: profile this script with py-spy to see the worker's CPU. Medians over ``--runs``
drains, each on a fresh consumer group and a fresh store. Last line: JSON.
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
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import redis  # noqa: E402
import xgboost as xgb  # noqa: E402
from aiokafka import AIOKafkaConsumer  # noqa: E402

from batch_training.pipeline import PipelineOptions, run_training  # noqa: E402
from batch_training.registry import ModelRegistry  # noqa: E402
from bench.stream_bench import bulk_producer  # noqa: E402
from embedded import EmbeddedBroker  # noqa: E402
from feature_store import CORE_FEATURE_SET, TransactionCodec  # noqa: E402
from feature_store.online import (  # noqa: E402
    EntityRequest,
    LabelUpdate,
    MemoryOnlineStore,
    OnlineStore,
    RedisOnlineStore,
)
from feature_store.plan import EntityPlan  # noqa: E402
from simulator import SimulationConfig, TrafficGenerator  # noqa: E402
from stream.app import tune_gc  # noqa: E402
from stream.batched import BatchedWorker  # noqa: E402
from stream.compiled import CompileOptions  # noqa: E402
from stream.metrics import StreamMetrics  # noqa: E402
from stream.pipeline import OutRecord, WorkerPipeline, build_pipeline  # noqa: E402
from stream.processor import RawEvent  # noqa: E402
from stream.scoring import ServingModel, load_serving_model  # noqa: E402
from stream.settings import StreamSettings, TopicNames  # noqa: E402
from stream.topics import ensure_topics  # noqa: E402

__all__ = ["main"]

_STALL_S = 30.0  # nothing fetched for this long: the broker stalled (reported as consumed < n)
_PREFIX = "ceiling-"


def _preproduce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> None:
    producer = bulk_producer(bootstrap)
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


async def _bare(bootstrap: str, topic: str, n: int, max_records: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="ceiling-bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        max_poll_records=max_records,
    )
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


class _TimedStore:
    """The store, with the time spent in its read-and-update calls."""

    def __init__(self, inner: OnlineStore) -> None:
        self.inner = inner
        self.seconds = 0.0

    async def read_update_batch(
        self, plans: Sequence[EntityPlan], requests: Sequence[EntityRequest]
    ) -> np.ndarray:
        began = time.perf_counter()
        try:
            return await self.inner.read_update_batch(plans, requests)
        finally:
            self.seconds += time.perf_counter() - began

    async def apply_labels(self, plans: Sequence[EntityPlan], labels: Sequence[LabelUpdate]) -> int:
        return await self.inner.apply_labels(plans, labels)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


class _GcClock:
    """Time spent in the cyclic garbage collector while in the ``with`` block."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began

    def __enter__(self) -> _GcClock:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


@dataclass
class _Drain(WorkerPipeline):
    """The worker's pipeline, timed, that stops the worker once ``target`` events are done.

    ``between_batches`` runs at the top of the worker's loop: after the previous batch was
    sent, acknowledged and committed, so the drain's clock stops there.
    """

    target: int = 0
    processed: int = 0
    batches: int = 0
    degraded: int = 0
    process_s: float = 0.0
    began: float = 0.0
    ended: float = 0.0
    cpu_began: float = 0.0
    cpu_ended: float = 0.0
    last_progress: float = 0.0
    stop: Callable[[], None] = lambda: None  # the worker's, once it exists

    def __post_init__(self) -> None:
        super().__post_init__()
        self.last_progress = time.perf_counter()

    async def between_batches(self) -> None:
        now = time.perf_counter()
        if not self.ended and (
            self.processed >= self.target or now - self.last_progress > _STALL_S
        ):
            self.ended = self.last_progress
            self.cpu_ended = time.process_time()
            self.stop()
        await super().between_batches()

    async def process(self, events: Sequence[RawEvent]) -> list[OutRecord]:
        began = time.perf_counter()
        if not self.began:
            self.began, self.cpu_began = began, time.process_time()
        try:
            return await super().process(events)
        finally:
            self.last_progress = time.perf_counter()
            self.process_s += self.last_progress - began
            self.processed += len(events)
            self.batches += 1


async def _batched(
    settings: StreamSettings, bootstrap: str, n: int, model: ServingModel, store: OnlineStore
) -> dict[str, Any]:
    timed = _TimedStore(store)
    metrics = StreamMetrics()
    base = build_pipeline(settings, store=timed, metrics=metrics, model=model, compile_options=None)
    drain = _Drain(
        processor=base.processor,
        watcher=base.watcher,
        metrics=metrics,
        topics=base.topics,
        ledger=base.ledger,
        target=n,
    )
    worker = BatchedWorker(settings, bootstrap=bootstrap, pipeline=drain, store=timed)
    drain.stop = worker.stop
    with _GcClock() as gc_clock:
        await worker.run()
    elapsed = drain.ended - drain.began
    per_event = 1e6 / max(drain.processed, 1)
    return {
        "tps": round(drain.processed / elapsed),
        "seconds": round(elapsed, 3),
        "batches": drain.batches,
        "consumed": drain.processed,
        "degraded": int(metrics.degraded._value.get()),
        "us_per_event": {
            "total": round(elapsed * per_event, 1),
            "store": round(timed.seconds * per_event, 1),
            "pipeline_without_store": round((drain.process_s - timed.seconds) * per_event, 1),
            "kafka_and_loop": round((elapsed - drain.process_s) * per_event, 1),
            # the process's CPU (all threads): less sensitive than wall time to other jobs
            "cpu": round((drain.cpu_ended - drain.cpu_began) * per_event, 1),
            "gc": round(gc_clock.seconds * per_event, 1),
        },
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of every number over the runs, keyed as one run is."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = _median([run[key] for run in runs])
        else:
            out[key] = statistics.median(run[key] for run in runs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--max-records", type=int, default=1_000, help="FRAUD_BATCH_MAX")
    parser.add_argument("--runs", type=int, default=1, help="drains per mode (medians reported)")
    parser.add_argument("--stores", default="memory,redis", help="which batched drains to run")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
    )
    parser.add_argument(
        "--only-bare", action="store_true", help="skip the processing drains (e.g. for 200k)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stores = {s for s in args.stores.split(",") if s}
    work = Path(tempfile.mkdtemp(prefix="bench-ceiling-"))
    generator = TrafficGenerator(SimulationConfig(cards=5_000, merchants=500, seed=3))
    # the events must be dated in the past, or the worker dead-letters them (future_timestamp)
    event_days = 1.05 * args.events / generator.expected_tx_per_day + 1.0
    start = datetime.now(UTC) - timedelta(days=14 + event_days)
    registry = ModelRegistry(work / "registry")
    run_training(
        generator.history(start=start, days=14),
        registry=registry,
        options=PipelineOptions(
            feature_set=CORE_FEATURE_SET,
            train_start=start + timedelta(days=1),  # complete simulated labels: the last days
            train_days=8,
            delay_days=2,
            test_days=4,
        ),
    )
    base = StreamSettings(
        registry_dir=registry.root,
        topic_prefix=_PREFIX,
        partitions=2,
        batch_max=args.max_records,
        metrics_port=0,
        group_timeout_s=3.0,
        data_dir=work / "stream",
    )
    # as run_worker prepares the worker: XGBoost's threads, then the compiled champion
    xgb.set_config(nthread=base.xgboost_threads)
    compile_options = CompileOptions(cache_dir=work / "compiled") if base.compile_model else None
    model = load_serving_model(registry, compile_options=compile_options)
    codec = TransactionCodec()
    events = generator.events(start=start + timedelta(days=14))
    payloads = []
    for _ in range(args.events):
        tx = next(events).transaction
        payloads.append((tx.card_id.encode(), codec.encode(tx)))
    tune_gc()  # as run_worker does once start-up is over
    result: dict[str, Any] = {
        "events": args.events,
        "max_records": args.max_records,
        "runs": args.runs,
        "machine": {"cores": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2)},
    }
    with EmbeddedBroker() as broker:
        topics = TopicNames(_PREFIX)
        ensure_topics(broker.bootstrap, topics.all(), partitions=2)
        began = time.perf_counter()
        _preproduce(broker.bootstrap, topics.transactions, payloads)
        result["preproduce_tps"] = round(args.events / (time.perf_counter() - began))
        n, mr = args.events, args.max_records
        result["bare"] = asyncio.run(_bare(broker.bootstrap, topics.transactions, n, mr))
        print(json.dumps(result), file=sys.stderr, flush=True)
        if args.only_bare:
            print(json.dumps(result))
            return
        modes = [("batched", None)] if "memory" in stores else []
        modes += [("batched_redis", args.redis_url)] if "redis" in stores else []
        for mode, redis_url in modes:
            runs = []
            for run in range(args.runs):
                settings = base.model_copy(
                    update={"app_id": f"ceiling-{mode}-{run}", "redis_url": redis_url}
                )
                if redis_url is not None:
                    redis.Redis.from_url(redis_url).flushdb()  # the ledger too: fresh decisions

                async def drain(settings: StreamSettings = settings) -> dict[str, Any]:
                    # redis clients bind to the loop they first run on: build them inside it
                    url = settings.redis_url
                    store = MemoryOnlineStore() if url is None else RedisOnlineStore(url=url)
                    return await _batched(settings, broker.bootstrap, n, model, store)

                runs.append(asyncio.run(drain()))
                print(json.dumps({mode: runs[-1]}), file=sys.stderr, flush=True)
            result[mode] = _median(runs) if len(runs) > 1 else runs[0]
            if len(runs) > 1:
                result[f"{mode}_runs"] = [r["tps"] for r in runs]
    if not args.json:
        print(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
