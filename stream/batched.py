"""The batched consumer (``FRAUD_CONSUMER=batched``): an aiokafka ``getmany`` loop, no faust.

faust hands events to an agent one by one (an Event object, a stream buffer, per-event
acknowledgements) and regroups them with ``take_events``; on the embedded broker that path
tops out near 1k events/s whatever the batch settings. This loop takes whatever the
consumer has fetched (up to ``FRAUD_BATCH_MAX`` records) in one ``getmany`` call and
hands it to the same :class:`~stream.pipeline.WorkerPipeline` as the faust agents.

Delivery is unchanged: at least once, idempotent by the decision ledger. Per batch:

1. the transactions are decided and every output is queued on the producer;
2. the labels are decoded and applied to the store, then the invalid ones are queued to
   the DLQ;
3. all the batch's sends are awaited (acknowledged by the broker);
4. only then are the batch's offsets committed.

A crash anywhere before 4 redelivers the batch; the ledger re-emits its decisions.
Labels that cannot be applied (store down) are neither committed nor dead-lettered: their
partitions are rewound to the batch's first label and paused, and the labels are retried
after a back-off (doubling up to ``_LABEL_RETRY_MAX_S``) while transactions keep flowing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    InconsistentGroupProtocolError,
)
from aiokafka.partitioner import DefaultPartitioner

from feature_store import OnlineStoreUnavailable
from feature_store.online import OnlineStore
from stream.compiled import CompileOptions
from stream.errors import StreamStartError
from stream.metrics import StreamMetrics
from stream.pipeline import OutRecord, WorkerPipeline, build_pipeline, label_retry_delay_s
from stream.processor import RawEvent
from stream.scoring import ServingModel
from stream.settings import StreamSettings

__all__ = ["BatchedWorker", "run_batched"]

log = logging.getLogger(__name__)

_IDLE_WAKEUP_MS = 100  # an idle loop still polls the champion and sees a stop request


class _ReadyFile(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """Writes the readiness file once partitions are assigned (as the faust worker does)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None  # offsets are committed at the end of every batch: nothing pending

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if self._path is not None:
            self._path.write_text("ready\n")


def _raw(record: Any) -> RawEvent:
    return RawEvent(
        record.value, record.timestamp / 1000.0, record.topic, record.partition, record.offset
    )


class _Outbox:
    """Sends a batch's outputs as one record batch per topic-partition.

    ``producer.send`` costs a coroutine, a future and a callback per record (a fifth of the
    worker's CPU in a drain); a record batch has one future. Records are partitioned by
    key exactly as ``send`` would (murmur2 over the topic's partitions). Both are cached:
    the worker creates its topics and never repartitions them, and murmur2 is pure Python
    (8 % of the loop's CPU in a drain, uncached) while the same cards come back again and
    again.
    """

    _KEYS_CACHED = 1 << 18  # per topic; past that the cache starts afresh

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._by_key: dict[str, dict[bytes, int]] = {}

    async def _partitions_of(self, topic: str) -> list[int]:
        parts = self._partitions.get(topic)
        if parts is None:
            parts = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        return parts

    async def _partition(self, topic: str, key: bytes | None) -> int:
        by_key = self._by_key.get(topic)
        if by_key is None or len(by_key) >= self._KEYS_CACHED:
            by_key = self._by_key[topic] = {}
        partition = by_key.get(key) if key is not None else None
        if partition is None:
            parts = await self._partitions_of(topic)
            partition = self._partitioner(key, parts, parts)
            if key is not None:  # a keyless record goes to a random partition: not cached
                by_key[key] = partition
        return partition

    async def send(self, records: Iterable[OutRecord]) -> list[asyncio.Future[Any]]:
        """Queue every record; the futures resolve when the broker has acknowledged them."""
        producer = self._producer
        builders: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for topic, key, value in records:
            partition = await self._partition(topic, key)
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[topic, partition] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None) is None:  # full
                futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[topic, partition] = producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record for {topic} is larger than a whole batch")
        for (topic, partition), builder in builders.items():
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        return futures


class BatchedWorker:
    """One consumer-group member: transactions and labels in, outputs out, then commit."""

    def __init__(
        self,
        settings: StreamSettings,
        *,
        bootstrap: str,
        pipeline: WorkerPipeline,
        store: OnlineStore,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._store = store
        self._topics = settings.topics
        self._stop = asyncio.Event()
        timeout_ms = int(settings.group_timeout_s * 1000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=settings.app_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            max_poll_records=settings.batch_max,
            session_timeout_ms=timeout_ms,
            rebalance_timeout_ms=timeout_ms,
            heartbeat_interval_ms=max(500, timeout_ms // 5),
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=0,  # a batch's sends are queued back to back: they batch by themselves
            max_batch_size=1024 * 1024,
        )
        self._outbox = _Outbox(self._producer)
        self._label_failures = 0  # consecutive: the retry back-off grows with them
        self._labels_resume_at: float | None = None

    def stop(self) -> None:
        """Finish the batch in hand, commit it, then leave the group."""
        self._stop.set()

    async def run(self) -> None:
        topics = self._topics
        self._consumer.subscribe(
            [topics.transactions, topics.labels], listener=_ReadyFile(self._settings.ready_file)
        )
        await self._producer.start()
        try:
            try:
                await self._consumer.start()
                while not self._stop.is_set():
                    await self._pipeline.between_batches()
                    self._resume_labels_when_due()
                    got = await self._consumer.getmany(
                        timeout_ms=_IDLE_WAKEUP_MS, max_records=self._settings.batch_max
                    )
                    if got:
                        await self._handle(got)
            except InconsistentGroupProtocolError:
                raise StreamStartError(_other_kind_in_group(self._settings.app_id)) from None
            finally:
                await _stop_consumer(self._consumer)
        finally:
            await self._producer.stop()  # flushes whatever a failed batch had queued
            await self._pipeline.close()
            await self._store.close()

    async def _handle(self, got: dict[Any, list[Any]]) -> None:
        transactions: list[RawEvent] = []
        labels: list[RawEvent] = []
        for tp, records in got.items():
            (labels if tp.topic == self._topics.labels else transactions).extend(
                _raw(r) for r in records
            )
        sends: list[asyncio.Future[Any]] = []
        if transactions:
            sends += await self._outbox.send(await self._pipeline.process(transactions))
        commit = {tp: records[-1].offset + 1 for tp, records in got.items()}
        if labels:
            updates, letters = self._pipeline.decode_labels(labels)
            try:
                await self._pipeline.apply_labels(updates)
            except OnlineStoreUnavailable as exc:
                self._retry_labels(got, commit, len(updates), exc)
            else:
                self._label_failures = 0
                # only now: a retried batch would dead-letter its invalid labels again
                sends += await self._outbox.send(letters)
        await asyncio.gather(*sends)  # acknowledged by the broker before the input is committed
        if commit:  # empty when the batch was only labels, all to be retried
            try:
                await self._consumer.commit(commit)
            except (CommitFailedError, IllegalStateError) as exc:
                # the group rebalanced mid-batch: the new owner redelivers, the ledger dedups
                log.warning("offsets not committed (%s); the batch will be redelivered", exc)
        self._record_lag(got)

    def _retry_labels(
        self, got: dict[Any, list[Any]], commit: dict[Any, int], n: int, exc: Exception
    ) -> None:
        """Rewind the batch's label partitions and pause them for a back-off."""
        self._label_failures += 1
        delay = label_retry_delay_s(self._label_failures)
        log.error("could not apply %d labels, retrying them in %.2f s: %s", n, delay, exc)
        label_tps = [tp for tp in got if tp.topic == self._topics.labels]
        for tp in label_tps:
            self._consumer.seek(tp, got[tp][0].offset)
            del commit[tp]
        self._consumer.pause(*label_tps)
        self._labels_resume_at = time.monotonic() + delay

    def _resume_labels_when_due(self) -> None:
        # a rebalance meanwhile only unpauses them sooner: they restart from the commit
        if self._labels_resume_at is not None and time.monotonic() >= self._labels_resume_at:
            self._consumer.resume(*self._consumer.paused())
            self._labels_resume_at = None

    def _record_lag(self, got: dict[Any, list[Any]]) -> None:
        for tp, records in got.items():
            if tp.topic != self._topics.transactions:
                continue
            end = self._consumer.highwater(tp)
            if end is not None:
                lag = max(0, end - records[-1].offset - 1)
                self._pipeline.metrics.lag.labels(str(tp.partition)).set(lag)


async def run_batched(
    settings: StreamSettings,
    *,
    bootstrap: str,
    store: OnlineStore,
    metrics: StreamMetrics,
    model: ServingModel,
    compile_options: CompileOptions | None,
) -> None:
    """Run the batched worker until SIGTERM/SIGINT; returns once it has left the group."""
    pipeline = build_pipeline(
        settings, store=store, metrics=metrics, model=model, compile_options=compile_options
    )
    worker = BatchedWorker(settings, bootstrap=bootstrap, pipeline=pipeline, store=store)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    await worker.run()


def _other_kind_in_group(app_id: str) -> str:
    return (
        f"the consumer group {app_id!r} (FRAUD_APP_ID) is held by the other kind of worker: "
        "faust and FRAUD_CONSUMER=batched assign partitions differently and cannot share a "
        "group. Stop those workers and start this one once the group is empty (an embedded "
        "broker keeps the group until it restarts), or give this one another FRAUD_APP_ID "
        "(a new group starts from the oldest events the topics keep)"
    )


async def _stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Leave the group and close; aiokafka's stop() raises CancelledError when a fetch was
    backing off from a broker that went away (aio-libs/aiokafka#647), with the consumer
    closed all the same: a stop during a broker outage ended in a traceback."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # this task is being cancelled: go on
            raise
        log.warning("Kafka consumer closed with a fetch cancelled (the broker is unreachable)")
