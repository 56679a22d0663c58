"""Replaying a history through the online path: materialization and the parity proof.

Transactions go in canonical order; each fraud label goes in at the moment it became
known (``label_time``, else the label delay after the transaction), after its own
transaction and before the first transaction that may count it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from feature_store.definitions import FeatureSet
from feature_store.offline import DEFAULT_LABEL_DELAY_S, canonical_order, epoch_ms
from feature_store.online.base import LabelUpdate, OnlineStore
from feature_store.online.engine import OnlineFeatureEngine
from feature_store.schema import Transaction

__all__ = ["frame_transactions", "history_labels", "materialize_history", "replay_history"]

_OPTIONAL = ("currency", "mcc", "channel", "country", "device_id")


def frame_transactions(frame: pd.DataFrame) -> list[Transaction]:
    """The rows of a history frame as transactions, in frame order."""
    optional = [c for c in _OPTIONAL if c in frame.columns]
    columns = ["transaction_id", "event_time", "card_id", "merchant_id", "amount", *optional]
    return [
        Transaction(
            transaction_id=str(r["transaction_id"]),
            event_time=r["event_time"].to_pydatetime(),
            card_id=str(r["card_id"]),
            merchant_id=str(r["merchant_id"]),
            amount=float(r["amount"]),
            **{c: str(r[c]) for c in optional if pd.notna(r[c])},
        )
        for r in frame[columns].to_dict("records")
    ]


def history_labels(
    ordered: pd.DataFrame, ts: np.ndarray, *, label_delay_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, known-at ms) of the fraud rows of a canonically ordered history."""
    if "is_fraud" not in ordered.columns:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    positions = np.nonzero(ordered["is_fraud"].to_numpy(dtype=bool))[0]
    known = ts[positions] + label_delay_s * 1000
    if "label_time" in ordered.columns:
        label_time = pd.to_datetime(ordered["label_time"].iloc[positions], utc=True)
        has = label_time.notna().to_numpy()
        known[has] = epoch_ms(label_time[has])
    return positions, known


def replay_history(
    history: pd.DataFrame, *, label_delay_s: int = DEFAULT_LABEL_DELAY_S, chunk: int = 1024
) -> Iterator[tuple[pd.Index, list[Transaction]] | list[LabelUpdate]]:
    """Batches of (history index, transactions) and of labels, in the order they happen."""
    ordered = history.iloc[canonical_order(history)]
    ts = epoch_ms(ordered["event_time"])
    positions, known = history_labels(ordered, ts, label_delay_s=label_delay_s)
    # a label applies before the first transaction at or after the moment it is known,
    # and never before its own transaction
    apply_at = np.maximum(np.searchsorted(ts, known, side="left"), positions + 1)
    by_time = np.argsort(apply_at, kind="stable")
    apply_at, positions, known = apply_at[by_time], positions[by_time], known[by_time]
    ids = ordered["transaction_id"].astype(str).to_numpy()
    start, j, n = 0, 0, len(ordered)
    while start < n:
        if j < len(apply_at) and apply_at[j] <= start:
            end_j = int(np.searchsorted(apply_at, start, side="right"))
            yield [
                LabelUpdate(transaction_id=ids[p], is_fraud=True, label_ts_ms=int(k))
                for p, k in zip(positions[j:end_j], known[j:end_j], strict=True)
            ]
            j = end_j
        stop = min(n, start + chunk, int(apply_at[j]) if j < len(apply_at) else n)
        part = ordered.iloc[start:stop]
        yield part.index, frame_transactions(part)
        start = stop


async def materialize_history(
    history: pd.DataFrame,
    *,
    feature_set: FeatureSet,
    store: OnlineStore,
    label_delay_s: int = DEFAULT_LABEL_DELAY_S,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Push every row (and label) through the online update path; return the row count."""
    engine = OnlineFeatureEngine(feature_set=feature_set, store=store)
    done = 0
    for step in replay_history(history, label_delay_s=label_delay_s):
        if isinstance(step, list):
            await engine.apply_labels(step)
            continue
        _, batch = step
        await engine.compute_batch(batch)
        done += len(batch)
        if progress is not None:
            progress(done)
    return done
