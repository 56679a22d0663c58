"""Verdicts flow back as labels: an outbox relay from the ``verdicts`` table to ``fraud.labels``.

A verdict is committed first, then sent by the relay's thread; ``label_sent_at`` is set only
once the broker has acknowledged it. A crash in between re-sends it (at-least-once); the
label is keyed by transaction id, and a repeat carries the same verdict.

The request that gives a verdict only wakes the relay: an analyst never waits on Kafka
(each verdict used to wait up to 15 s while the broker was down, and analysts behind one
another). A label stays in flight until the producer settles it, so a slow broker is not
sent it again meanwhile (a stalled one got 3-5 copies of each); a failed send is sent
again at the next pass.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from feature_store.labels import LabelCodec, LabelEvent
from review.schema import Verdict

__all__ = ["LabelRelay"]

log = logging.getLogger(__name__)

_LABELLED = ("fraud", "legit")  # escalations are not labels


class LabelRelay:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        bootstrap: str,
        topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        connect_timeout_s: float = 30.0,
    ) -> None:
        self._sessions = sessions
        self._bootstrap = bootstrap
        self._connect_timeout_ms = int(connect_timeout_s * 1000)
        self._topic = topic
        self._clock = clock
        self._codec = LabelCodec()
        self._producer = self._new_producer()
        self._in_flight: dict[int, FutureRecordMetadata] = {}  # verdict id -> its send
        self._lock = threading.Lock()  # one relay pass at a time
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._interval_s = 2.0
        self._thread = threading.Thread(target=self._run, name="review-labels", daemon=True)
        self.sent = 0

    def _new_producer(self) -> KafkaProducer:
        # Not idempotent: a broker that lost its producer ids (a restart) left kafka-python
        # retrying UnknownProducerIdError until the delivery timeout, with the labels stuck;
        # repeats are harmless here, each carries the same verdict. A send waits at most 5 s
        # for metadata and fails after 30 s (then it is sent again), so stop() comes soon.
        return KafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=False,
            client_id="fraud-review-labels",
            bootstrap_timeout_ms=self._connect_timeout_ms,
            max_block_ms=5_000,
            request_timeout_ms=10_000,
            delivery_timeout_ms=30_000,
        )

    def wake(self) -> None:
        """A verdict was committed: send it now rather than at the next interval."""
        self._wake.set()

    def publish_pending(self, *, limit: int = 500, timeout_s: float = 10.0) -> int:
        """Send the unsent labels not in flight (oldest first), wait up to ``timeout_s``
        for the broker, and record the acknowledged ones; returns how many those were."""
        with self._lock:
            self._send_new(limit)
            # a slow broker: what it acknowledged is settled, the rest stays in flight
            with contextlib.suppress(KafkaTimeoutError):
                self._producer.flush(timeout=timeout_s)
            return self._settle()

    def _send_new(self, limit: int) -> None:
        query = (
            select(Verdict)
            .where(Verdict.label_sent_at.is_(None), Verdict.kind.in_(_LABELLED))
            .order_by(Verdict.id)
            .limit(limit)
        )
        if self._in_flight:
            query = query.where(Verdict.id.not_in(list(self._in_flight)))
        with self._sessions() as session:
            pending = list(session.scalars(query))
        for verdict in pending:
            label = LabelEvent(
                transaction_id=verdict.transaction_id,
                is_fraud=verdict.kind == "fraud",
                label_time=verdict.created_at,
                analyst=verdict.analyst,
            )
            self._in_flight[verdict.id] = self._producer.send(
                self._topic, key=verdict.transaction_id.encode(), value=self._codec.encode(label)
            )

    def _settle(self) -> int:
        done = {vid: f for vid, f in self._in_flight.items() if f.is_done}
        for vid in done:
            del self._in_flight[vid]
        acked = [vid for vid, f in done.items() if f.succeeded()]
        if acked:
            with self._sessions.begin() as session:
                session.execute(
                    update(Verdict).where(Verdict.id.in_(acked)).values(label_sent_at=self._clock())
                )
        failed = [f.exception for f in done.values() if f.failed()]
        if failed:  # sent again at the next pass
            log.warning(
                "label relay: %d label(s) not acknowledged (%s); retrying",
                len(failed),
                failed[0],
            )
        self.sent += len(acked)
        return len(acked)

    def start(self, interval_s: float = 2.0) -> None:
        self._interval_s = interval_s
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread, then send what is queued (a console shutting down hands its
        last verdicts to the broker if it can)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        try:
            self.publish_pending(timeout_s=timeout_s)
        except Exception as exc:  # Kafka or the database: the producer is closed regardless
            log.warning("label relay: %s; the unsent labels go at the next start", exc)
        self._producer.close(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.publish_pending()
            except KafkaError:
                log.exception("label relay: Kafka error; the labels stay queued")
            except Exception:
                log.exception("label relay: database error; retrying")
