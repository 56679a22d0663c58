"""The live archiver: ``transactions`` and ``fraud.labels`` from Kafka into the archive.

Offsets are committed only after the files are written, so a crash re-writes some records
(at-least-once); :func:`~feature_store.archive.reader.read_archive` drops the repeats by
transaction id. The only part of the archive that needs a Kafka client.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
from kafka import KafkaConsumer

from feature_store.archive.layout import remove_abandoned_parts, write_days
from feature_store.errors import InvalidEvent
from feature_store.labels import LabelCodec
from feature_store.schema import TransactionCodec

__all__ = ["ArchiveStats", "TopicArchiver"]

log = logging.getLogger(__name__)


@dataclass
class ArchiveStats:
    transactions: int = 0
    labels: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason → count (the DLQ has them)
    files: int = 0


class TopicArchiver:
    def __init__(
        self,
        *,
        bootstrap: str,
        transactions_topic: str,
        labels_topic: str,
        out_dir: Path,
        group_id: str = "fraud-archive",
        flush_rows: int = 100_000,
        flush_interval_s: float = 60.0,
        connect_timeout_s: float = 30.0,
    ) -> None:
        self._topics = (transactions_topic, labels_topic)
        self._out = out_dir
        self._flush_rows = flush_rows
        self._flush_interval_s = flush_interval_s
        self._transactions = TransactionCodec()
        self._labels = LabelCodec()
        self._consumer = KafkaConsumer(
            *self._topics,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="fraud-archive",
            bootstrap_timeout_ms=int(connect_timeout_s * 1000),
            # short group timeouts: brokers wait about the poll interval before a join completes
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            max_poll_interval_ms=15_000,
        )
        self._pending: dict[str, list[dict[str, Any]]] = {"transactions": [], "labels": []}
        self.stats = ArchiveStats()
        if removed := remove_abandoned_parts(out_dir):
            log.info("removed %d unfinished part(s) a killed archiver left in %s", removed, out_dir)

    def run(self, *, stop: threading.Event, idle_exit_s: float | None = None) -> ArchiveStats:
        """Archive until ``stop`` is set, or until nothing arrived for ``idle_exit_s``."""
        last_flush = last_record = time.monotonic()
        try:
            while not stop.is_set():
                # idle time counts from the group's assignment on: joining takes seconds
                if self._poll() or not self._consumer.assignment():
                    last_record = time.monotonic()
                now = time.monotonic()
                rows = sum(len(v) for v in self._pending.values())
                if rows >= self._flush_rows or now - last_flush >= self._flush_interval_s:
                    self._flush()
                    last_flush = now
                if idle_exit_s is not None and now - last_record >= idle_exit_s:
                    break
            self._flush()
        finally:
            self._consumer.close()
        return self.stats

    def _poll(self) -> int:
        batches = self._consumer.poll(timeout_ms=500, max_records=5000)
        count = 0
        for partition, records in batches.items():
            is_label = partition.topic == self._topics[1]
            for record in records:
                count += 1
                try:
                    if is_label:
                        label = self._labels.decode(record.value)
                        self._pending["labels"].append(msgspec.structs.asdict(label))
                    else:
                        tx = self._transactions.decode(record.value, now=time.time())
                        self._pending["transactions"].append(msgspec.structs.asdict(tx))
                except InvalidEvent as exc:
                    self.stats.skipped[exc.reason] = self.stats.skipped.get(exc.reason, 0) + 1
        return count

    def _flush(self) -> None:
        for kind, time_column in (("transactions", "event_time"), ("labels", "label_time")):
            rows = self._pending[kind]
            if not rows:
                continue
            self.stats.files += write_days(self._out / kind, pd.DataFrame(rows), time_column)
            setattr(self.stats, kind, getattr(self.stats, kind) + len(rows))
            rows.clear()
        self._consumer.commit()
