"""``fraud demo``: the whole loop on embedded parts, with every event accounted for.

Broker (embedded Tansu) -> simulated history -> trained model v1 -> faust worker in a
child process (warmed from the history) -> live traffic -> decisions consumed and
checked against the simulator's ground truth. Every process started here is stopped.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from kafka import KafkaConsumer, KafkaProducer

from batch_training.pipeline import PipelineOptions, run_training
from batch_training.registry import ModelRegistry
from batch_training.train import TrainingConfig
from embedded import EmbeddedBroker, free_port
from feature_store import CORE_FEATURE_SET
from simulator import (
    SimulatedEvent,
    SimulationConfig,
    TrafficGenerator,
    produce_live,
    write_history,
)
from stream.records import DeadLetter, DecisionRecord
from stream.settings import TopicNames
from stream.topics import ensure_topics

__all__ = ["DemoConfig", "DemoError", "run_demo"]


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where its log is."""


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    duration_s: float = 20.0
    rate: float = 300.0
    cards: int = 2000
    merchants: int = 200
    history_days: int = 28
    delay_days: int = 4
    test_days: int = 7
    seed: int = 7
    invalid_rate: float = 0.005
    partitions: int = 2
    drain_timeout_s: float = 30.0
    worker_start_timeout_s: float = 90.0
    workdir: Path | None = None


class _Outcomes:
    """What came back from the worker, gathered by a consumer thread."""

    def __init__(self) -> None:
        self.decisions: dict[str, DecisionRecord] = {}
        self.conflicting: set[str] = set()  # the same transaction with two different decisions
        self.duplicates = 0
        self.alerts: set[str] = set()
        self.dead_letters: list[DeadLetter] = []
        self.last_at = 0.0
        self.lock = threading.Lock()

    @property
    def accounted(self) -> int:
        with self.lock:
            return len(self.decisions) + len(self.dead_letters)


def _consume(
    bootstrap: str, topics: TopicNames, outcomes: _Outcomes, stop: threading.Event
) -> None:
    decision_decoder = msgspec.json.Decoder(DecisionRecord)
    letter_decoder = msgspec.json.Decoder(DeadLetter)
    consumer = KafkaConsumer(
        topics.decisions,
        topics.alerts,
        topics.dlq,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        fetch_max_wait_ms=50,
    )
    try:
        while not stop.is_set():
            for tp, records in consumer.poll(timeout_ms=100).items():
                with outcomes.lock:
                    for record in records:
                        outcomes.last_at = time.time()
                        if tp.topic == topics.dlq:
                            outcomes.dead_letters.append(letter_decoder.decode(record.value))
                            continue
                        decision = decision_decoder.decode(record.value)
                        if tp.topic == topics.alerts:
                            outcomes.alerts.add(decision.transaction_id)
                            continue
                        seen = outcomes.decisions.get(decision.transaction_id)
                        if seen is not None:
                            outcomes.duplicates += 1
                            if seen.decision != decision.decision:
                                outcomes.conflicting.add(decision.transaction_id)
                            continue
                        outcomes.decisions[decision.transaction_id] = decision
    finally:
        consumer.close()


@contextmanager
def _worker(
    *,
    bootstrap: str,
    workdir: Path,
    topics_prefix: str,
    partitions: int,
    history: Path,
    timeout_s: float,
) -> Iterator[subprocess.Popen[bytes]]:
    ready = workdir / "worker.ready"
    ready.unlink(missing_ok=True)  # a file left by an earlier run must not count as ready
    env = {
        **os.environ,
        "FRAUD_KAFKA_BOOTSTRAP": bootstrap,
        "FRAUD_REGISTRY_DIR": str(workdir / "registry"),
        "FRAUD_WARM_HISTORY": str(history),
        "FRAUD_TOPIC_PREFIX": topics_prefix,
        "FRAUD_PARTITIONS": str(partitions),
        "FRAUD_DATA_DIR": str(workdir / "stream"),
        "FRAUD_READY_FILE": str(ready),
        "FRAUD_GROUP_TIMEOUT_S": "3",
        "FRAUD_METRICS_PORT": str(free_port()),
    }
    env.pop("FRAUD_REDIS_URL", None)  # the demo runs on the embedded in-memory store
    log_path = workdir / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fraud_cli", "stream"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + timeout_s
            while not ready.exists():
                if process.poll() is not None:
                    raise DemoError(f"the worker exited with {process.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"the worker was not ready after {timeout_s:g}s; see {log_path}"
                    )
                time.sleep(0.05)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _write_commands(workdir: Path, config: DemoConfig, train_start: date) -> None:
    """``commands.sh`` in a kept workdir: the demo's steps as commands to run again on
    it (the embedded broker is gone with the demo)."""
    w = shlex.quote(str(workdir.absolute()))
    split = (
        f"--feature-set core --train-start {train_start} --train-days "
        f"{config.history_days - config.delay_days - config.test_days} --delay-days "
        f"{config.delay_days} --test-days {config.test_days} --seed {config.seed}"
    )
    stream_env = (
        f"FRAUD_REGISTRY_DIR={w}/registry FRAUD_WARM_HISTORY={w}/history.parquet "
        f"FRAUD_DATA_DIR={w}/stream"
    )
    lines = [
        f"# What `fraud demo` did in {w}, as commands to run again on it, one by one",
        f"# (written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; `fraud broker` and `fraud stream`",
        "# run until Ctrl-C: give each a terminal). The demo's broker was embedded and is",
        "# gone; without FRAUD_KAFKA_BOOTSTRAP each command would start a broker of its own.",
        "export FRAUD_KAFKA_BOOTSTRAP=127.0.0.1:9092",
        "fraud broker --port 9092",
        "",
        "# the registry: model v1, its report under versions/1/report/index.html",
        f"fraud models --registry {w}/registry list",
        "# train again on the same history and split (the same seed gives the same model)",
        f"fraud train --history {w}/history.parquet --registry {w}/registry {split}",
        "# the worker on the champion, its in-memory store warmed from the history",
        f"{stream_env} fraud stream",
        "# live traffic of the same simulated population",
        f"fraud simulate live --cards {config.cards} --merchants {config.merchants} "
        f"--seed {config.seed} --rate {config.rate:g} --duration {config.duration_s:g} "
        f"--invalid-rate {config.invalid_rate:g}",
        "# keep the payments and the analysts' verdicts (fraud.labels) for retraining: the",
        "# demo's history first, then what the stream sees, until Ctrl-C",
        f"fraud archive --out {w}/archive --backfill {w}/history.parquet",
        f"fraud archive --out {w}/archive",
        "# retrain on the archive (this split: the same model again; without --train-start,",
        "# the latest window whose labels are complete, --label-delay-days before the end)",
        f"fraud train --history {w}/archive --registry {w}/registry {split}",
    ]
    (workdir / "commands.sh").write_text("\n".join(lines) + "\n")


def _live_start(generator: TrafficGenerator, *, events: int, now: datetime) -> datetime:
    """Where live traffic starts so that its last event is not in the future.

    Traffic varies by hour of day, so the average rate alone can put the last events ahead
    of the wall clock, where the worker rightly rejects them (``future_timestamp``).
    """
    start = now - timedelta(days=events / generator.expected_tx_per_day)
    for _ in range(3):
        last = next(islice(generator.events(start=start), events - 1, None))
        overshoot = last.transaction.event_time - now
        if overshoot <= timedelta(0):
            break
        start -= overshoot + timedelta(minutes=1)
    return start


def run_demo(
    config: DemoConfig,
    *,
    say: Callable[[str], None],
    then: Callable[[str, Path, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The whole loop. ``then(bootstrap, workdir, summary)`` runs while the broker and the
    worker are still up (``fraud demo --review`` serves the console from there)."""
    with ExitStack() as stack:
        workdir = config.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        topics = TopicNames()
        broker = stack.enter_context(EmbeddedBroker())
        say(f"[1/5] embedded broker on {broker.bootstrap}")
        ensure_topics(broker.bootstrap, topics.all(), partitions=config.partitions)

        generator = TrafficGenerator(
            SimulationConfig(cards=config.cards, merchants=config.merchants, seed=config.seed)
        )
        # History ends where live traffic starts; live event times end about now.
        live_start = _live_start(
            generator, events=round(config.rate * config.duration_s), now=datetime.now(UTC)
        )
        history_start = live_start - timedelta(days=config.history_days)
        history = generator.history(start=history_start, days=config.history_days)
        history_path = write_history(history, workdir / "history.parquet")
        say(f"[2/5] simulated {len(history):,} transactions over {config.history_days} days")

        run = run_training(
            history,
            registry=ModelRegistry(workdir / "registry"),
            options=PipelineOptions(
                feature_set=CORE_FEATURE_SET,
                # the simulator's labels are complete: test on the latest days, training
                # from the first whole day
                train_start=history_start + timedelta(days=1),
                train_days=config.history_days - config.delay_days - config.test_days,
                delay_days=config.delay_days,
                test_days=config.test_days,
                training=TrainingConfig(seed=config.seed),
            ),
        )
        meta = run.metadata
        if config.workdir is not None:  # kept: say how to go on from it
            _write_commands(workdir, config, run.evaluation.split.train_start)
        say(
            f"[3/5] trained model v{meta.version} ({run.seconds:.1f}s); on the held-out "
            f"{config.test_days} days: AUC {meta.metrics['roc_auc']:.3f}, "
            f"AP {meta.metrics['average_precision']:.3f}, "
            f"CP@100 {meta.metrics['card_precision_at_100']:.3f}"
        )
        stack.enter_context(
            _worker(
                bootstrap=broker.bootstrap,
                workdir=workdir,
                topics_prefix="",
                partitions=config.partitions,
                history=history_path,
                timeout_s=config.worker_start_timeout_s,
            )
        )
        say("[4/5] worker up (warmed from the history); producing live traffic")

        outcomes = _Outcomes()
        stop_consumer = threading.Event()
        consumer = threading.Thread(
            target=_consume, args=(broker.bootstrap, topics, outcomes, stop_consumer), daemon=True
        )
        consumer.start()
        stack.callback(consumer.join, 10)
        stack.callback(stop_consumer.set)

        truth: dict[str, bool] = {}

        def on_sent(event: SimulatedEvent | None, _raw: bytes) -> None:
            if event is not None:
                truth[event.transaction.transaction_id] = event.is_fraud

        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, linger_ms=1, acks=1, enable_idempotence=False
        )
        produce_started = time.time()
        try:
            stats = produce_live(
                producer=producer,
                topic=topics.transactions,
                events=generator.events(start=live_start),
                rate=config.rate,
                duration_s=config.duration_s,
                invalid_rate=config.invalid_rate,
                rng_seed=config.seed,
                on_sent=on_sent,
            )
        finally:
            producer.close()
        deadline = time.monotonic() + config.drain_timeout_s
        while outcomes.accounted < stats.sent and time.monotonic() < deadline:
            time.sleep(0.05)
        say(f"[5/5] sent {stats.sent:,} events; {outcomes.accounted:,} accounted for")
        stop_consumer.set()
        consumer.join(10)
        summary = _summary(stats.sent, truth, outcomes, produce_started, meta.version)
        if then is not None:
            then(broker.bootstrap, workdir, summary)
        return summary
    raise AssertionError("unreachable")  # pragma: no cover


def _summary(
    events_in: int, truth: dict[str, bool], outcomes: _Outcomes, started: float, version: int
) -> dict[str, Any]:
    decisions = outcomes.decisions
    latencies = np.array([d.latency_ms for d in decisions.values()]) if decisions else np.zeros(1)
    flagged = {t for t, d in decisions.items() if d.decision != "approve"}
    frauds = {t for t, is_fraud in truth.items() if is_fraud}
    span = max(outcomes.last_at - started, 1e-9)
    by_decision = {
        k: sum(d.decision == k for d in decisions.values())
        for k in ("approve", "review", "decline")
    }
    dlq_reasons: dict[str, int] = {}
    for letter in outcomes.dead_letters:
        dlq_reasons[letter.reason] = dlq_reasons.get(letter.reason, 0) + 1
    return {
        "events_in": events_in,
        "decisions": len(decisions),
        "dlq": len(outcomes.dead_letters),
        "lost": events_in - len(decisions) - len(outcomes.dead_letters),
        "duplicate_decisions": outcomes.duplicates,
        "conflicting_decisions": len(outcomes.conflicting),
        "throughput_tps": round(len(decisions) / span, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(latencies, 50)), 2),
            "p99": round(float(np.percentile(latencies, 99)), 2),
            "max": round(float(latencies.max()), 2),
        },
        "by_decision": by_decision,
        "degraded": sum(d.degraded for d in decisions.values()),
        "alerts": len(outcomes.alerts),
        "alert_precision": round(len(flagged & frauds) / len(flagged), 4) if flagged else None,
        "fraud_recall": round(len(flagged & frauds) / len(frauds), 4) if frauds else None,
        "frauds_in": len(frauds),
        "dlq_reasons": dlq_reasons,
        "model_version": version,
    }
