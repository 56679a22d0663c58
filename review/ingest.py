"""Alerts become cases, decisions become the card's activity: idempotent by transaction id.

The consumer commits its Kafka offsets only after the rows are committed in the database, so
a crash replays records (at-least-once) and the unique transaction id drops the repeats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from feature_store.schema import redact_pans
from review.schema import Base, CardActivity, Case, IngestError
from stream.records import DecisionRecord

__all__ = ["AlertIngestor", "IngestConsumer", "IngestTopics", "insert_ignoring_duplicates"]

log = logging.getLogger(__name__)

_CHUNK = 500  # rows per INSERT: well under SQLite's and PostgreSQL's bound-parameter limits


def insert_ignoring_duplicates(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], key: str
) -> int:
    """INSERT ... ON CONFLICT (key) DO NOTHING; returns how many rows were new."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    added = 0
    for start in range(0, len(rows), _CHUNK):
        # RETURNING lists only the rows really inserted (rowcount is unreliable here)
        statement = (
            insert(model)
            .values(list(rows[start : start + _CHUNK]))
            .on_conflict_do_nothing(index_elements=[key])
            .returning(getattr(model, key))
        )
        added += len(session.execute(statement).all())
    return added


def _event_time(r: DecisionRecord) -> datetime:
    """Raises ValueError for a time that is not ISO 8601 with a zone."""
    when = datetime.fromisoformat(r.event_time.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"event_time {r.event_time!r} has no timezone")
    return when.astimezone(UTC)


def _activity_row(r: DecisionRecord) -> dict[str, Any]:
    """The columns a case shares with the card's activity."""
    return {
        "transaction_id": r.transaction_id,
        "card_id": r.card_id,
        "merchant_id": r.merchant_id,
        "amount": r.amount,
        "event_time": _event_time(r),
        "decision": r.decision,
        "score": r.score,
        "model_version": r.model_version,
    }


class AlertIngestor:
    """Writes decoded records; knows nothing about Kafka (so it is tested on its own)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add_alerts(self, records: Sequence[DecisionRecord], *, now: datetime) -> int:
        rows = [
            {
                **_activity_row(r),
                "sort_score": -1.0 if r.score is None else r.score,
                "reason_codes": [c for c in r.reason_codes if not c.startswith("rule:")],
                "rule_hits": [c[5:] for c in r.reason_codes if c.startswith("rule:")],
                "feature_set_version": r.feature_set_version,
                "degraded": r.degraded,
                "alerted_at": datetime.fromtimestamp(r.decided_at, UTC),
                "ingested_at": now,
                "status": "open",
            }
            for r in records
        ]
        with self._sessions.begin() as session:
            return insert_ignoring_duplicates(session, Case, rows, "transaction_id")

    def add_decisions(self, records: Sequence[DecisionRecord]) -> int:
        rows = [_activity_row(r) for r in records]
        with self._sessions.begin() as session:
            return insert_ignoring_duplicates(session, CardActivity, rows, "transaction_id")

    def forget_activity(self, *, before: datetime) -> int:
        """Drop card activity older than ``before`` (cases are kept: they are the record)."""
        with self._sessions.begin() as session:
            result = session.execute(delete(CardActivity).where(CardActivity.event_time < before))
            return max(int(getattr(result, "rowcount", 0) or 0), 0)

    def add_error(self, topic: str, partition: int, offset: int, reason: str) -> None:
        with self._sessions.begin() as session:
            session.add(
                IngestError(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    reason=reason[:2000],
                    at=datetime.now(UTC),
                )
            )


@dataclass(frozen=True)
class IngestTopics:
    alerts: str
    decisions: str | None  # None: do not keep card activity


class IngestConsumer:
    """A kafka-python consumer thread feeding an :class:`AlertIngestor`."""

    def __init__(
        self,
        ingestor: AlertIngestor,
        *,
        bootstrap: str,
        topics: IngestTopics,
        group_id: str = "fraud-review",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        activity_retention: timedelta = timedelta(days=30),
        connect_timeout_s: float = 30.0,
    ) -> None:
        self._ingestor = ingestor
        self._retention = activity_retention
        self._next_purge = 0.0
        self._topics = topics
        self._clock = clock
        self._decoder = msgspec.json.Decoder(DecisionRecord)
        names = [topics.alerts] + ([topics.decisions] if topics.decisions else [])
        self._consumer = KafkaConsumer(
            *names,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="fraud-review",
            bootstrap_timeout_ms=int(connect_timeout_s * 1000),
            # short group timeouts: brokers wait about the poll interval before a join completes
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            max_poll_interval_ms=15_000,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-ingest", daemon=True)
        self.ingested = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        self._consumer.close()

    def poll_once(self, timeout_ms: int = 500) -> int:
        """One fetch → rows → commit; returns the number of records read."""
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=2000)
        try:
            count = self._store(batches)
        except Exception:
            # rewind, so the next poll reads these records again instead of skipping them
            for partition, records in batches.items():
                self._consumer.seek(partition, records[0].offset)
            raise
        if count:
            self._consumer.commit()
        return count

    def _store(self, batches: dict[Any, list[Any]]) -> int:
        alerts: list[DecisionRecord] = []
        decisions: list[DecisionRecord] = []
        count = 0
        for partition, records in batches.items():
            target = alerts if partition.topic == self._topics.alerts else decisions
            for record in records:
                count += 1
                try:
                    decoded = self._decoder.decode(record.value)
                    _event_time(decoded)  # refused here, or the whole batch would fail
                    target.append(decoded)
                except (msgspec.DecodeError, TypeError, ValueError, OverflowError) as exc:
                    # never the payload: it may hold whatever a producer put there, and the
                    # decoder's message quotes a bad value
                    reason = redact_pans(str(exc))
                    log.warning(
                        "unreadable record %s[%d]@%d: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        reason,
                    )
                    self._ingestor.add_error(record.topic, record.partition, record.offset, reason)
        if alerts:
            self.ingested += self._ingestor.add_alerts(alerts, now=self._clock())
        if decisions:
            self._ingestor.add_decisions(decisions)
        return count

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
                if time.monotonic() >= self._next_purge:
                    self._next_purge = time.monotonic() + 600
                    self._ingestor.forget_activity(before=self._clock() - self._retention)
            except KafkaError:
                log.exception("alert consumer: Kafka error; retrying")
                self._stop.wait(1.0)
            except Exception:  # a database outage must not kill the thread: retry later
                log.exception("alert consumer: could not store records; retrying")
                self._stop.wait(1.0)
