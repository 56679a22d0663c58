"""Deliberately malformed events, one per DLQ reason code, to exercise the stream's DLQ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import msgspec

from feature_store.schema import Transaction, TransactionCodec

__all__ = ["INVALID_KINDS", "InvalidKind", "invalid_payload"]

InvalidKind = Literal[
    "malformed_json",
    "missing_field",
    "invalid_amount",
    "wrong_type",
    "future_timestamp",
    "pan_in_card_id",
]
# Each kind is named after the InvalidEvent.reason the codec must give it.
INVALID_KINDS: Final[tuple[InvalidKind, ...]] = (
    "malformed_json",
    "missing_field",
    "invalid_amount",
    "wrong_type",
    "future_timestamp",
    "pan_in_card_id",
)
# A well-known test card number: Luhn-valid, never a real customer's.
TEST_PAN: Final = "4111111111111111"

_codec = TransactionCodec()


def invalid_payload(kind: InvalidKind, tx: Transaction, *, now: datetime) -> bytes:
    """The JSON a broken producer would send for ``tx``, broken in the way ``kind`` names.

    ``now`` is the wall clock: the future-timestamp event is one day ahead of it.
    """
    raw = _codec.encode(tx)
    if kind == "malformed_json":
        return raw[: len(raw) // 2]  # a truncated write
    obj = msgspec.json.decode(raw)
    if kind == "missing_field":
        del obj["merchant_id"]
    elif kind == "invalid_amount":
        obj["amount"] = -abs(tx.amount) or -1.0
    elif kind == "wrong_type":
        obj["amount"] = f"{tx.amount:.2f}"  # a string where a number belongs
    elif kind == "future_timestamp":
        obj["event_time"] = (now.astimezone(UTC) + timedelta(days=1)).isoformat()
    elif kind == "pan_in_card_id":
        obj["card_id"] = TEST_PAN
    else:
        raise ValueError(f"unknown invalid event kind {kind!r}; use one of {INVALID_KINDS}")
    return msgspec.json.encode(obj)
