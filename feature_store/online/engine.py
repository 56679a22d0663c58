"""Online engine: features for a micro-batch of transactions, one store round trip.

The store answers the plan's prior aggregates; :func:`feature_store.plan.derive_features`
(the same function the offline engine uses) turns them into features.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from feature_store.definitions import Entity, FeatureSet
from feature_store.online.base import EntityRequest, LabelUpdate, OnlineStore
from feature_store.plan import EventColumns, FeaturePlan
from feature_store.schema import Transaction

__all__ = ["OnlineFeatureEngine", "epoch_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_OPTIONAL_FIELDS = ("currency", "mcc", "channel", "country")


def epoch_ms(moment: datetime) -> int:
    """Exact integer milliseconds (floor), as the offline engine's datetime64[ms] cast."""
    return (moment - _EPOCH) // _MS


def _entity_id(tx: Transaction, entity: Entity) -> str:
    return tx.card_id if entity == "card" else tx.merchant_id


class OnlineFeatureEngine:
    def __init__(self, *, feature_set: FeatureSet, store: OnlineStore) -> None:
        self.feature_set = feature_set
        self.plan = FeaturePlan(feature_set)
        self._store = store
        self._plans = tuple(self.plan.entities.values())
        self._fields = [f for f in _OPTIONAL_FIELDS if f in self.plan.required_fields]

    async def compute_batch(self, transactions: Sequence[Transaction]) -> np.ndarray:
        """Features (rows in input order, columns in set order); records the events too."""
        stamps = [epoch_ms(tx.event_time) for tx in transactions]
        requests = [
            EntityRequest(
                plan=i,
                entity_id=_entity_id(tx, plan.entity),
                ts_ms=ts,
                transaction_id=tx.transaction_id,
                amount=tx.amount,
                counterparty_id=_entity_id(tx, plan.counterparty),
            )
            for tx, ts in zip(transactions, stamps, strict=True)
            for i, plan in enumerate(self._plans)
        ]
        rows = await self._store.read_update_batch(self._plans, requests)
        width = len(self._plans)
        aggregates = {
            plan.entity: rows[i::width, : len(plan.aggs)] for i, plan in enumerate(self._plans)
        }
        times = [tx.event_time.astimezone(UTC) for tx in transactions]
        events = EventColumns(
            amount=np.fromiter((tx.amount for tx in transactions), np.float64, len(transactions)),
            ts_ms=np.asarray(stamps, dtype=np.float64),
            hour=np.fromiter((t.hour for t in times), np.int64, len(times)),
            weekday=np.fromiter((t.weekday() for t in times), np.int64, len(times)),
            fields={
                f: np.array([str(getattr(tx, f)) for tx in transactions], dtype=object)
                for f in self._fields
            },
        )
        return self.plan.derive(aggregates, events)

    def for_feature_set(self, feature_set: FeatureSet) -> OnlineFeatureEngine:
        """An engine for another feature set over the same store."""
        return OnlineFeatureEngine(feature_set=feature_set, store=self._store)

    async def apply_labels(self, labels: Sequence[LabelUpdate]) -> int:
        return await self._store.apply_labels(self._plans, labels)
