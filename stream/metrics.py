"""The worker's Prometheus metrics, on their own registry (so tests can read them)."""

from __future__ import annotations

import collections

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from stream.processor import BatchOutput

__all__ = ["StreamMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class StreamMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("fraud_events_in", "Events consumed from transactions", registry=r)
        self.decisions = Counter("fraud_decisions", "Decisions produced", ["decision"], registry=r)
        self.dead_letters = Counter(
            "fraud_dead_letters", "Events sent to the DLQ", ["reason"], registry=r
        )
        self.degraded = Counter(
            "fraud_degraded_decisions", "Decisions taken by the fallback policy", registry=r
        )
        self.latency = Histogram(
            "fraud_decision_latency_seconds",
            "Produce-to-decision latency",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "fraud_batch_size", "Events per micro-batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.lag = Gauge(
            "fraud_consumer_lag", "Messages behind the partition's end", ["partition"], registry=r
        )
        self.model_version = Gauge(
            "fraud_model_version", "Version of the serving model", registry=r
        )
        self.model_swaps = Counter("fraud_model_swaps", "Hot model swaps", registry=r)
        self.models_refused = Counter(
            "fraud_models_refused", "Champions refused (checksum or features)", registry=r
        )
        self.labels_applied = Counter("fraud_labels_applied", "Label events applied", registry=r)
        self.rule_hits = Counter(
            "fraud_rule_hits", "Decisions forced by a rule", ["rule"], registry=r
        )

    def record_batch(self, size: int, out: BatchOutput) -> None:
        self.events_in.inc(size)
        self.batch_size.observe(size)
        # counters are bumped once per label value and batch: each inc takes a lock
        decisions: collections.Counter[str] = collections.Counter()
        degraded = 0
        observe = self.latency.observe
        for record in out.decisions:
            decisions[record.decision] += 1
            observe(record.latency_ms / 1000.0)
            degraded += record.degraded
            for reason in record.reason_codes:
                if reason.startswith("rule:"):
                    self.rule_hits.labels(reason[5:]).inc()
        for decision, n in decisions.items():
            self.decisions.labels(decision).inc(n)
        if degraded:
            self.degraded.inc(degraded)
        for reason, n in collections.Counter(letter.reason for letter in out.dead_letters).items():
            self.dead_letters.labels(reason).inc(n)

    def serve(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - a scrape target
        start_http_server(port, addr=host, registry=self.registry)
