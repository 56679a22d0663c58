"""Verdicts flow back as labels: an outbox relay from the ``verdicts`` table to ``fraud.labels``.

A verdict is committed first, then sent; ``label_sent_at`` is set only once the broker has
acknowledged it. A crash in between re-sends it (at-least-once); the label is keyed by
transaction id, and a repeat carries the same verdict.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from feature_store.labels import LabelCodec, LabelEvent
from review.schema import Verdict

__all__ = ["LabelRelay"]

log = logging.getLogger(__name__)


class LabelRelay:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        bootstrap: str,
        topic: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._topic = topic
        self._clock = clock
        self._codec = LabelCodec()
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", client_id="fraud-review-labels"
        )
        self._lock = threading.Lock()  # one relay pass at a time: no label sent twice by us
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="review-labels", daemon=True)
        self.sent = 0

    def publish_pending(self, *, limit: int = 500, timeout_s: float = 10.0) -> int:
        """Send the unsent labels (oldest first); returns how many the broker acknowledged."""
        with self._lock, self._sessions.begin() as session:
            pending = list(
                session.scalars(
                    select(Verdict)
                    .where(Verdict.label_sent_at.is_(None), Verdict.kind.in_(("fraud", "legit")))
                    .order_by(Verdict.id)
                    .limit(limit)
                )
            )
            futures = [
                self._producer.send(
                    self._topic,
                    key=v.transaction_id.encode(),
                    value=self._codec.encode(
                        LabelEvent(
                            transaction_id=v.transaction_id,
                            is_fraud=v.kind == "fraud",
                            label_time=v.created_at,
                            analyst=v.analyst,
                        )
                    ),
                )
                for v in pending
            ]
            self._producer.flush(timeout=timeout_s)
            now = self._clock()
            sent = 0
            for verdict, future in zip(pending, futures, strict=True):
                if future.succeeded():
                    verdict.label_sent_at = now
                    sent += 1
            self.sent += sent
            return sent

    def start(self, interval_s: float = 2.0) -> None:
        self._interval_s = interval_s
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._producer.close(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.publish_pending()
            except KafkaError:
                log.exception("label relay: Kafka error; the labels stay queued")
            except Exception:
                log.exception("label relay: database error; retrying")
