"""The per-batch steps both consumers share (faust agents and the batched aiokafka loop).

A consumer only moves bytes: it hands raw events to :class:`WorkerPipeline` and sends the
``(topic, key, value)`` records it gets back. Everything else (hot model reload between
batches, the processor, metrics, label decoding, dead letters) lives here, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from batch_training.registry import ModelRegistry
from feature_store import InvalidEvent, TransactionCodec
from feature_store.labels import LabelCodec
from feature_store.online import LabelUpdate, OnlineFeatureEngine, OnlineStore
from stream.compiled import CompileOptions
from stream.ledger import DecisionLedger, MemoryLedger, RedisLedger
from stream.metrics import StreamMetrics
from stream.processor import BatchOutput, BatchProcessor, RawEvent, dead_letter
from stream.reload import ModelWatcher
from stream.rules import RulesFile
from stream.scoring import ServingModel
from stream.settings import StreamSettings, TopicNames

__all__ = ["OutRecord", "WorkerPipeline", "build_pipeline", "label_retry_delay_s"]

_LABEL_RETRY_MIN_S = 0.25  # first wait before labels the store refused are retried
_LABEL_RETRY_MAX_S = 5.0


def label_retry_delay_s(failures: int) -> float:
    """Back-off before the n-th consecutive retry of labels the store refused (n >= 1)."""
    return float(min(_LABEL_RETRY_MAX_S, _LABEL_RETRY_MIN_S * 2.0 ** (failures - 1)))


log = logging.getLogger(__name__)

OutRecord = tuple[str, bytes | None, bytes]
"""A record to produce: topic, key, value."""


@dataclass
class WorkerPipeline:
    processor: BatchProcessor
    watcher: ModelWatcher
    metrics: StreamMetrics
    topics: TopicNames
    ledger: DecisionLedger

    def __post_init__(self) -> None:
        self._encode = msgspec.json.Encoder().encode
        self._label_codec = LabelCodec()

    async def between_batches(self) -> None:
        """Follow the registry's champion; no event waits on a swap (see stream.reload)."""
        refused_before = self.watcher.refusals
        swapped = await self.watcher.poll()
        if swapped is not None:
            self.processor.swap_model(swapped)
            self.metrics.model_swaps.inc()
            self.metrics.model_version.set(swapped.version)
        self.metrics.models_refused.inc(self.watcher.refusals - refused_before)

    async def process(self, events: Sequence[RawEvent]) -> list[OutRecord]:
        """Decide a batch of transactions; the decisions, alerts and dead letters to send."""
        out = await self.processor.process(events)
        self.metrics.record_batch(len(events), out)
        log.debug("batch: %d decisions, %d dead letters", len(out.decisions), len(out.dead_letters))
        return self.outputs(out)

    def outputs(self, out: BatchOutput) -> list[OutRecord]:
        topics, encode = self.topics, self._encode
        records: list[OutRecord] = []
        for record in out.decisions:
            key = record.card_id.encode()
            body = encode(record)
            records.append((topics.decisions, key, body))
            if record.decision != "approve":
                records.append((topics.alerts, key, body))
        records.extend((topics.dlq, None, encode(letter)) for letter in out.dead_letters)
        return records

    def decode_labels(
        self, events: Sequence[RawEvent]
    ) -> tuple[list[LabelUpdate], list[OutRecord]]:
        """Label updates, and a dead letter for each event that is not a valid label."""
        updates: list[LabelUpdate] = []
        letters: list[OutRecord] = []
        now = time.time()
        for event in events:
            try:
                updates.append(self._label_codec.decode(event.value).to_update())
            except InvalidEvent as exc:
                letters.append((self.topics.dlq, None, self._encode(dead_letter(event, exc, now))))
        return updates, letters

    async def apply_labels(self, updates: Sequence[LabelUpdate]) -> None:
        """Raises OnlineStoreUnavailable: the caller must not acknowledge these labels."""
        matched = await self.processor.apply_labels(updates)
        self.metrics.labels_applied.inc(len(updates))
        log.info("applied %d labels (%d matched known transactions)", len(updates), matched)

    async def close(self) -> None:
        """At shutdown, after the last batch: a model load in progress is waited for."""
        await self.watcher.close()
        await self.ledger.close()
        log.warning("stopped, serving model v%s to the end", self.watcher.current.version)


def build_pipeline(
    settings: StreamSettings,
    *,
    store: OnlineStore,
    metrics: StreamMetrics,
    model: ServingModel,
    compile_options: CompileOptions | None,
) -> WorkerPipeline:
    """The processor over ``store`` serving ``model``, and the watcher of its registry."""
    ledger: DecisionLedger = (
        RedisLedger(url=settings.redis_url) if settings.redis_url else MemoryLedger()
    )
    processor = BatchProcessor(
        codec=TransactionCodec(max_amount=settings.max_amount),
        engine=OnlineFeatureEngine(feature_set=model.feature_set, store=store),
        model=model,
        fallback=settings.fallback_decision,
        deadline_s=settings.batch_deadline_ms / 1000.0,
        rules=RulesFile(settings.rules_file, model.feature_set.names),
        ledger=ledger,
    )
    metrics.model_version.set(model.version)
    watcher = ModelWatcher(
        registry=ModelRegistry(settings.registry_dir),
        current=model,
        interval_s=settings.model_poll_s,
        compile_options=compile_options,
    )
    return WorkerPipeline(
        processor=processor,
        watcher=watcher,
        metrics=metrics,
        topics=settings.topics,
        ledger=ledger,
    )
