"""Materialization: replay a history into an online store so the stream starts warm."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pandas as pd

from feature_store.definitions import FeatureSet
from feature_store.offline import canonical_order
from feature_store.online.base import OnlineStore
from feature_store.online.engine import OnlineFeatureEngine
from feature_store.schema import Transaction

__all__ = ["history_transactions", "materialize_history"]

_OPTIONAL = ("currency", "mcc", "channel", "country", "device_id")


def history_transactions(
    history: pd.DataFrame, *, chunk: int = 1024
) -> Iterator[list[Transaction]]:
    """The history's rows as transactions, in canonical order, ``chunk`` at a time."""
    ordered = history.iloc[canonical_order(history)]
    optional = [c for c in _OPTIONAL if c in ordered.columns]
    columns = ["transaction_id", "event_time", "card_id", "merchant_id", "amount", *optional]
    records = ordered[columns].to_dict("records")
    for start in range(0, len(records), chunk):
        yield [
            Transaction(
                transaction_id=str(r["transaction_id"]),
                event_time=r["event_time"].to_pydatetime(),
                card_id=str(r["card_id"]),
                merchant_id=str(r["merchant_id"]),
                amount=float(r["amount"]),
                **{c: str(r[c]) for c in optional if pd.notna(r[c])},
            )
            for r in records[start : start + chunk]
        ]


async def materialize_history(
    history: pd.DataFrame,
    *,
    feature_set: FeatureSet,
    store: OnlineStore,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Push every row through the online update path; return the row count."""
    engine = OnlineFeatureEngine(feature_set=feature_set, store=store)
    done = 0
    for batch in history_transactions(history):
        await engine.compute_batch(batch)
        done += len(batch)
        if progress is not None:
            progress(done)
    return done
