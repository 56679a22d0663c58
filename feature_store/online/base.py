"""The online store interface: per-entity state that answers a plan's prior aggregates.

For each request (one transaction as seen by one entity) a backend returns the plan's
aggregates over the entity's events BEFORE this one, then records it; a whole batch in
one round trip, in order, so a second event of a card in the batch sees the first.
Recording is idempotent: a redelivered transaction neither sees nor counts itself twice.
Fraud labels arrive later and update the entities that keep fraud counts.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import numpy as np

from feature_store.plan import EntityPlan

__all__ = ["LATENESS_MS", "EntityRequest", "LabelUpdate", "OnlineStore", "party_hash"]

# How late (event time) an event may arrive and still find the state it needs: state is
# kept this long past the longest window.
LATENESS_MS: Final = 3_600_000


def party_hash(counterparty_id: str) -> int:
    """CRC-32 of a counterparty id: distinct / seen compare these (collisions ~1 in 4e9)."""
    return zlib.crc32(counterparty_id.encode())


@dataclass(frozen=True, slots=True)
class EntityRequest:
    """One transaction as seen by one entity (a card, a merchant)."""

    plan: int  # index into the plans passed with the batch
    entity_id: str
    ts_ms: int
    transaction_id: str
    amount: float
    counterparty_id: str


@dataclass(frozen=True, slots=True)
class LabelUpdate:
    """A verdict on a transaction, known from ``label_ts_ms`` on."""

    transaction_id: str
    is_fraud: bool
    label_ts_ms: int


@runtime_checkable
class OnlineStore(Protocol):
    async def read_update_batch(
        self, plans: Sequence[EntityPlan], requests: Sequence[EntityRequest]
    ) -> np.ndarray:
        """Prior aggregates, one row per request, ``len(plan.aggs)`` values (NaN-padded)."""
        ...

    async def apply_labels(self, plans: Sequence[EntityPlan], labels: Sequence[LabelUpdate]) -> int:
        """Record verdicts; return how many matched a transaction the store still knows."""
        ...

    async def ping(self) -> None:
        """Raise :class:`~feature_store.errors.OnlineStoreUnavailable` if unreachable."""
        ...

    async def close(self) -> None: ...
