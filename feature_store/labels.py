"""The label event: an analyst's (or a chargeback's) verdict on one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from feature_store.errors import InvalidEvent
from feature_store.online.base import LabelUpdate
from feature_store.online.engine import epoch_ms

__all__ = ["HISTORY_ANALYSTS", "LabelCodec", "LabelEvent"]

# the ``analyst`` of verdicts written into an archive from a history, which no analyst gave
# (no account may take these names)
HISTORY_ANALYSTS: Final = ("seed", "backfill")


class LabelEvent(msgspec.Struct, frozen=True, kw_only=True):
    """On ``fraud.labels``: ``label_time`` is when the verdict became known."""

    transaction_id: str
    is_fraud: bool
    label_time: datetime
    analyst: str | None = None

    def to_update(self) -> LabelUpdate:
        return LabelUpdate(
            transaction_id=self.transaction_id,
            is_fraud=self.is_fraud,
            label_ts_ms=epoch_ms(self.label_time),
        )


class LabelCodec:
    def __init__(self) -> None:
        self._decoder = msgspec.json.Decoder(LabelEvent)
        self._encoder = msgspec.json.Encoder()

    def encode(self, label: LabelEvent) -> bytes:
        return self._encoder.encode(label)

    def decode(self, raw: bytes | None) -> LabelEvent:
        if raw is None:  # a record without a value: a tombstone, or send(value=None)
            raise InvalidEvent("invalid_label", "empty message (tombstone)")
        try:
            label = self._decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise InvalidEvent("invalid_label", str(exc)) from None
        if label.label_time.tzinfo is None:
            raise InvalidEvent("invalid_label", "label_time has no timezone; send UTC with 'Z'")
        return label
