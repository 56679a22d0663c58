"""The online store interface: a short, windowed event log per entity.

Backends know nothing of features. For each entity event they return the entity's logged
events in [ts - horizon, ts] as they were BEFORE this event, then log it; all events of a
batch in one round trip, in order, so a second event of the same card in the batch sees
the first. The feature engine turns those logs into features, once, for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

__all__ = ["LATENESS_MS", "EntityEvent", "History", "LogEntry", "OnlineStore"]

# How late (event time) an event may arrive and still see the state it needs: the state is
# kept this long past the longest window.
LATENESS_MS: Final = 3_600_000


@dataclass(frozen=True, slots=True)
class EntityEvent:
    """One transaction as seen by one entity (a card, a merchant ...)."""

    key: str
    ts_ms: int
    transaction_id: str
    amount: float
    horizon_ms: int


@dataclass(frozen=True, slots=True)
class LogEntry:
    ts_ms: int
    transaction_id: str
    amount: float


History = list[LogEntry]


@runtime_checkable
class OnlineStore(Protocol):
    async def read_update_batch(self, events: Sequence[EntityEvent]) -> list[History]:
        """Per event, the log in [ts - horizon, ts] before it; then append it (idempotent)."""
        ...

    async def ping(self) -> None:
        """Raise :class:`~feature_store.errors.OnlineStoreUnavailable` if unreachable."""
        ...

    async def close(self) -> None: ...
