"""Records the stream writes: decisions (and alerts, the same record) and dead letters."""

from __future__ import annotations

from typing import Literal

import msgspec

from feature_store.schema import Id

__all__ = ["DeadLetter", "Decision", "DecisionRecord"]

Decision = Literal["approve", "review", "decline"]


# gc=False: a record holds only scalars and a list of strings, so it can be in no reference
# cycle; untracked, thousands per batch no longer trigger (and lengthen) GC passes.
class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Exactly one per valid transaction, on ``fraud.decisions``; flagged ones on alerts too.
    The ids keep the transaction contract's 1-64 characters when a record is read (the
    console took a 5 MB merchant id, and every queue page grew to 5 MB)."""

    transaction_id: Id
    card_id: Id
    merchant_id: Id
    amount: float
    event_time: str
    score: float | None
    decision: Decision
    reason_codes: list[str]
    model_version: int | None
    feature_set_version: str
    degraded: bool
    latency_ms: float
    decided_at: float


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event that broke the contract, with why; the payload has card numbers redacted."""

    reason: str
    detail: str
    payload: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: float
