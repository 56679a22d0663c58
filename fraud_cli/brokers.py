"""The Kafka a command talks to: the configured one, or an embedded broker for its lifetime;
and, for the commands that read the stream's topics, the stream's own one or a clear no."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

import click

__all__ = ["answered", "kafka_or_embedded", "stream_broker"]

_T = TypeVar("_T")


@contextlib.contextmanager
def kafka_or_embedded(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from embedded import EmbeddedBroker

    with EmbeddedBroker() as broker:
        click.echo(f"embedded broker listening on {broker.bootstrap}", err=True)
        yield broker.bootstrap


def stream_broker(bootstrap: str | None, command: str, hint: str) -> str:
    """The Kafka the stream writes to. Unlike the stream, these commands do not start an
    embedded broker: it would hold no alerts, and what they wrote to it would be lost."""
    if bootstrap is None:
        raise click.ClickException(
            f"{command} needs FRAUD_KAFKA_BOOTSTRAP, the Kafka the stream worker writes to; " + hint
        )
    return bootstrap


def answered(bootstrap: str, timeout_s: float, connect: Callable[[], _T]) -> _T:
    """``connect()``, or one line when its Kafka does not answer within ``timeout_s``
    (kafka-python's bootstrap ended in an 80-line traceback)."""
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    try:
        return connect()
    except (KafkaConnectionError, KafkaTimeoutError) as exc:
        raise click.ClickException(
            f"no Kafka broker answered at {bootstrap} within {timeout_s:g} s "
            f"({type(exc).__name__}); start it, or correct FRAUD_KAFKA_BOOTSTRAP "
            "(FRAUD_KAFKA_CONNECT_TIMEOUT_S waits longer)"
        ) from None
