"""``fraud review serve``: the web app, the alert consumer and the label relay, together."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import uvicorn

from review.database import make_engine, make_sessions, upgrade_schema
from review.feedback import LabelRelay
from review.ingest import AlertIngestor, IngestConsumer, IngestTopics
from review.web import ConsoleConfig, create_app

__all__ = ["ConsoleService", "ServiceConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    database_url: str
    bootstrap: str
    alerts_topic: str
    decisions_topic: str | None
    labels_topic: str
    group_id: str = "fraud-review"  # of the alert consumer
    host: str = "127.0.0.1"
    port: int = 8080
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    activity_retention: timedelta = timedelta(days=30)
    connect_timeout_s: float = 30.0  # for Kafka to answer at start-up


class ConsoleService:
    """Start with :meth:`run` (blocks until SIGINT/SIGTERM); threads stop with the server."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        engine = make_engine(config.database_url)
        upgrade_schema(engine)
        self.sessions = make_sessions(engine)
        self.consumer = IngestConsumer(
            AlertIngestor(self.sessions),
            bootstrap=config.bootstrap,
            topics=IngestTopics(alerts=config.alerts_topic, decisions=config.decisions_topic),
            group_id=config.group_id,
            activity_retention=config.activity_retention,
            connect_timeout_s=config.connect_timeout_s,
        )
        self.relay = LabelRelay(
            self.sessions,
            bootstrap=config.bootstrap,
            topic=config.labels_topic,
            connect_timeout_s=config.connect_timeout_s,
        )
        self.app = create_app(self.sessions, config=config.console, relay=self.relay)

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """The alert consumer and the label relay, running for the duration."""
        self.consumer.start()
        self.relay.start()
        try:
            yield
        finally:
            self.consumer.stop()
            self.relay.stop()
            log.info("review console's consumer and relay stopped")

    def run(self) -> None:
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=self.config.host,
                port=self.config.port,
                log_level="warning",
                access_log=False,  # URLs carry filter values; the audit trail records actions
            )
        )
        with self.background():
            server.run()
