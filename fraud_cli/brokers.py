"""The Kafka a command talks to: the configured one, or an embedded broker for its lifetime."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

__all__ = ["kafka_or_embedded"]


@contextlib.contextmanager
def kafka_or_embedded(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from embedded import EmbeddedBroker

    with EmbeddedBroker() as broker:
        click.echo(f"embedded broker listening on {broker.bootstrap}", err=True)
        yield broker.bootstrap
