"""Creating the loop's topics (idempotent), with kafka-python's admin client."""

from __future__ import annotations

import contextlib
import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)

from stream.errors import BrokerUnavailableError

__all__ = ["ensure_topics"]

log = logging.getLogger(__name__)


def ensure_topics(
    bootstrap: str, names: list[str], *, partitions: int, timeout_s: float = 30.0
) -> None:
    """Create any missing topic; wait until the broker lists them all.

    Raises :class:`BrokerUnavailableError` when no broker answers at ``bootstrap``.
    """
    try:
        _ensure_topics(bootstrap, names, partitions=partitions, timeout_s=timeout_s)
    except (KafkaConnectionError, KafkaTimeoutError) as exc:
        # only "nobody answered": a refusal by the broker (authorisation, topic policy)
        # keeps its own message
        raise BrokerUnavailableError(
            f"Kafka at {bootstrap!r} did not answer ({str(exc) or type(exc).__name__}); "
            "check FRAUD_KAFKA_BOOTSTRAP and that the broker is up"
        ) from exc


def _ensure_topics(bootstrap: str, names: list[str], *, partitions: int, timeout_s: float) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="fraud-admin")
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            # another process may create them first: that is the goal too
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [NewTopic(name, partitions, 1) for name in missing], timeout_ms=10_000
                )
            log.info("created topics %s with %d partitions", missing, partitions)
        deadline = time.monotonic() + timeout_s
        while not set(names) <= set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise KafkaError(f"topics {names} not listed by {bootstrap} after {timeout_s}s")
            time.sleep(0.1)
    finally:
        admin.close()
