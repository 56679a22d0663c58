"""Stream benchmark: drain throughput, latency under offered load, and the naive agent.

    .venv/bin/python bench/stream.py [--json] [--events 200000] [--naive-events 3000]
        [--consumer faust|batched] [--batch-max N]

Runs on the embedded broker and the real Redis on loopback (REDIS_URL, default database
13, flushed first). The worker is the real ``fraud stream`` child process. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import redis
from kafka import KafkaConsumer, KafkaProducer

from batch_training.pipeline import PipelineOptions, run_training
from batch_training.registry import ModelRegistry
from embedded import EmbeddedBroker
from feature_store import CORE_FEATURE_SET, TransactionCodec
from simulator import SimulationConfig, TrafficGenerator, produce_live
from stream.settings import TopicNames
from stream.topics import ensure_topics

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def _worker(command: list[str], env: dict[str, str], workdir: Path) -> Iterator[None]:
    ready = workdir / "ready"
    ready.unlink(missing_ok=True)
    log = (workdir / "worker.log").open("wb")
    process = subprocess.Popen(
        command,
        env={**os.environ, **env, "FRAUD_READY_FILE": str(ready)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start; see {workdir / 'worker.log'}")
            time.sleep(0.05)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


class _Collector:
    """Consumes decisions and dead letters in a thread: counts, latencies, last arrival.

    Dead letters count as handled (by reason), so events the worker refuses show up as
    such instead of looking like a stall.
    """

    def __init__(self, bootstrap: str, topics: TopicNames) -> None:
        self.count = 0  # decisions + dead letters
        self.degraded = 0  # decided by the fallback policy (e.g. features over budget)
        self.dead_letters: dict[str, int] = {}
        self.latencies: list[float] = []
        self.last_at = 0.0
        self._dlq = topics.dlq
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            topics.decisions,
            topics.dlq,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            fetch_max_wait_ms=20,
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for partition, records in self._consumer.poll(timeout_ms=50).items():
                for record in records:
                    body = json.loads(record.value)
                    if partition.topic == self._dlq:
                        reason = body["reason"]
                        self.dead_letters[reason] = self.dead_letters.get(reason, 0) + 1
                        continue
                    self.latencies.append(body["latency_ms"])
                    self.degraded += bool(body.get("degraded"))
                self.count += len(records)
                self.last_at = time.time()

    def wait_for(self, n: int, timeout_s: float, stall_s: float | None = None) -> None:
        """Until ``n`` decisions, ``timeout_s``, or (if given) ``stall_s`` without one."""
        began = time.time()
        deadline = time.monotonic() + timeout_s
        while self.count < n and time.monotonic() < deadline:
            if stall_s is not None and time.time() - max(self.last_at, began) > stall_s:
                return
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def bulk_producer(bootstrap: str) -> KafkaProducer:
    """A producer for loading a backlog fast: big batches, one ack, no idempotence."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        batch_size=512 * 1024,
        enable_idempotence=False,
        acks=1,
    )


def _preproduce(bootstrap: str, topic: str, events: Iterator[Any], n: int) -> None:
    codec = TransactionCodec()
    producer = bulk_producer(bootstrap)
    for _ in range(n):
        tx = next(events).transaction
        producer.send(topic, key=tx.card_id.encode(), value=codec.encode(tx))
    producer.flush()
    producer.close()


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) if values else np.zeros(1)
    return {
        p: round(float(np.percentile(a, q)), 2)
        for p, q in (("p50", 50), ("p99", 99), ("p999", 99.9))
    }


def _plot(latency: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [int(r) for r in latency]
    fig, ax = plt.subplots(figsize=(6, 4))
    for q in ("p50", "p99", "p999"):
        ax.plot(rates, [latency[str(r)][q] for r in rates], marker="o", label=q)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="offered rate (events/s)",
        ylabel="latency (ms)",
        title="Produce-to-decision latency, one worker, 2 cores",
    )
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--naive-events", type=int, default=3_000)
    parser.add_argument(
        "--consumer",
        choices=("faust", "batched"),
        default="faust",
        help="the worker's FRAUD_CONSUMER (the naive agent is faust either way)",
    )
    parser.add_argument("--batch-max", type=int, default=None, help="FRAUD_BATCH_MAX")
    parser.add_argument(
        "--stall-s",
        type=float,
        default=60.0,
        help="a drain that decides nothing for this long is reported as stalled",
    )
    parser.add_argument("--rates", default="1000,5000,10000")
    parser.add_argument("--seconds", type=float, default=10.0, help="per offered rate")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13")
    )
    parser.add_argument("--plot", type=Path, default=ROOT / "bench/results/stream_latency.png")
    args = parser.parse_args()
    redis.Redis.from_url(args.redis_url).flushdb()
    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    generator = TrafficGenerator(SimulationConfig(cards=5_000, merchants=500, seed=3))
    # Every event the run sends (drains, naive drain, live phases) must be dated in the past:
    # the worker dead-letters events more than 5 min in the future (future_timestamp). The
    # simulated clock runs at expected_tx_per_day (+ about 1 % fraud), so start it that many
    # days (+ 5 %, + 1 day) before now, after the 14 days of training history.
    needed = args.events + args.naive_events
    needed += sum(int(r) for r in args.rates.split(",")) * args.seconds
    event_days = 1.05 * needed / generator.expected_tx_per_day + 1.0
    start = datetime.now(UTC) - timedelta(days=14 + event_days)
    history = generator.history(start=start, days=14)
    registry = ModelRegistry(work / "registry")
    run_training(
        history,
        registry=registry,
        options=PipelineOptions(
            feature_set=CORE_FEATURE_SET,
            train_start=start + timedelta(days=1),  # complete simulated labels: the last days
            train_days=8,
            delay_days=2,
            test_days=4,
        ),
    )
    events = generator.events(start=start + timedelta(days=14))
    result: dict[str, Any] = {
        "machine": {"cores": os.cpu_count()},
        "events": args.events,
        "consumer": args.consumer,
    }
    with EmbeddedBroker() as broker:
        base_env = {
            "FRAUD_KAFKA_BOOTSTRAP": broker.bootstrap,
            "FRAUD_REDIS_URL": args.redis_url,
            "FRAUD_REGISTRY_DIR": str(registry.root),
            "FRAUD_PARTITIONS": "2",
            "FRAUD_GROUP_TIMEOUT_S": "3",
            "FRAUD_METRICS_PORT": "0",
            "FRAUD_DATA_DIR": str(work / "data"),
            "FRAUD_CONSUMER": args.consumer,
        }
        if args.batch_max is not None:
            base_env["FRAUD_BATCH_MAX"] = str(args.batch_max)
            result["batch_max"] = args.batch_max

        def drain(prefix: str, n: int, command: list[str]) -> float:
            topics = TopicNames(prefix)
            ensure_topics(broker.bootstrap, topics.all(), partitions=2)
            _preproduce(broker.bootstrap, topics.transactions, events, n)
            collector = _Collector(broker.bootstrap, topics)
            env = {**base_env, "FRAUD_TOPIC_PREFIX": prefix, "FRAUD_APP_ID": f"{prefix}app"}
            with _worker(command, env, work):
                began = time.time()
                collector.wait_for(n, timeout_s=1800, stall_s=args.stall_s)
            collector.close()
            result.setdefault("degraded", {})[prefix] = collector.degraded
            if collector.dead_letters:
                result.setdefault("dead_letters", {})[prefix] = collector.dead_letters
            if collector.count < n:
                result.setdefault("stalled", {})[prefix] = {
                    "decided": collector.count,
                    "of": n,
                    "after_s": round(collector.last_at - began, 1),
                }
            return collector.count / max(collector.last_at - began, 1e-9)

        def phase(name: str) -> None:  # progress, and what survives if a later phase stalls
            print(json.dumps({"phase": name, **result}), file=sys.stderr, flush=True)

        result["drain_tps"] = round(
            drain("drain-", args.events, [sys.executable, "-m", "fraud_cli", "stream"])
        )
        phase("drain")
        if args.naive_events > 0:  # 0 skips the naive agent (and the ratio)
            result["naive_drain_tps"] = round(
                drain("naive-", args.naive_events, [sys.executable, "-m", "bench.naive_agent"])
            )
            result["naive_events"] = args.naive_events
            result["ratio"] = round(result["drain_tps"] / max(result["naive_drain_tps"], 1e-9), 1)
        phase("drains")

        latency: dict[str, dict[str, float]] = {}
        topics = TopicNames("live-")
        ensure_topics(broker.bootstrap, topics.all(), partitions=2)
        collector = _Collector(broker.bootstrap, topics)
        env = {**base_env, "FRAUD_TOPIC_PREFIX": "live-", "FRAUD_APP_ID": "live-app"}
        with _worker([sys.executable, "-m", "fraud_cli", "stream"], env, work):
            producer = KafkaProducer(
                bootstrap_servers=broker.bootstrap, linger_ms=1, enable_idempotence=False, acks=1
            )
            for rate in (int(r) for r in args.rates.split(",")):
                before, degraded_before = len(collector.latencies), collector.degraded
                stats = produce_live(
                    producer=producer,
                    topic=topics.transactions,
                    events=events,
                    rate=rate,
                    duration_s=args.seconds,
                )
                collector.wait_for(collector.count + 0, 0)
                target = before + stats.sent
                deadline = time.monotonic() + 120
                while len(collector.latencies) < target and time.monotonic() < deadline:
                    time.sleep(0.05)
                phase(f"offered {rate}/s")
                latency[str(rate)] = {
                    **_pct(collector.latencies[before:target]),
                    "achieved_tps": round(stats.sent / stats.seconds),
                    "degraded": collector.degraded - degraded_before,
                }
        if collector.dead_letters:
            result.setdefault("dead_letters", {})["live-"] = collector.dead_letters
            producer.close()
        collector.close()
        result["latency_ms"] = latency
    _plot(latency, args.plot)
    if not args.json:
        print(json.dumps(result, indent=2))
    print(json.dumps(result))
