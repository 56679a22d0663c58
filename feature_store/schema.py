"""The transaction event contract and its fast JSON codec.

Events arrive as JSON with at least ``transaction_id``, ``event_time`` (RFC 3339 with a
timezone), ``card_id``, ``merchant_id`` and ``amount``. Decoding is one typed msgspec pass;
only a rejected event pays for a second, slower pass that names the reason.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec

from feature_store.errors import InvalidEvent

__all__ = [
    "MAX_AMOUNT",
    "MAX_FUTURE_SKEW_S",
    "REQUIRED_FIELDS",
    "Transaction",
    "TransactionCodec",
    "looks_like_pan",
    "redact_pans",
]

MAX_AMOUNT: Final = 1_000_000.0
MAX_FUTURE_SKEW_S: Final = 300.0

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
OptionalCode = Annotated[str, msgspec.Meta(max_length=32)] | None


class Transaction(msgspec.Struct, frozen=True, kw_only=True):
    """One payment authorisation request. Unknown extra fields are ignored."""

    transaction_id: Id
    event_time: datetime
    card_id: Id
    merchant_id: Id
    amount: float
    currency: OptionalCode = None
    mcc: OptionalCode = None
    channel: OptionalCode = None
    country: OptionalCode = None
    device_id: OptionalCode = None

    @property
    def event_ts(self) -> float:
        """Event time as UTC epoch seconds."""
        return self.event_time.timestamp()


REQUIRED_FIELDS: Final = ("transaction_id", "event_time", "card_id", "merchant_id", "amount")

# 13-19 digits, optionally grouped as card numbers are written and typed: by up to three
# of any space (tab, newline, no-break, thin), dash, dot or slash ("4111 - 1111 ...");
# not the fraction of a decimal too long to be one candidate (drift=0.00123...)
_PAN_CANDIDATE = re.compile(r"(?<!\d)(?<!\d\.)(?:\d[\s./-]{0,3}){12,18}\d(?!\d)")
_PAN_SEPARATORS = re.compile(r"[\s./-]")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_pan(candidate: str) -> bool:
    """A Luhn-valid 13-19 digit run. A decimal number (one dot, no other separator) is
    judged by its whole part: a logged float (2.8130040000000003) is not a card number,
    a card number stored as a float (4111111111111111.0) is."""
    if candidate.count(".") == 1 and candidate.replace(".", "").isdigit():
        candidate = candidate.partition(".")[0]
    digits = _PAN_SEPARATORS.sub("", candidate)
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)


def looks_like_pan(value: str) -> bool:
    """True when ``value`` contains a 13-19 digit run that passes the Luhn check."""
    return any(_is_pan(match.group()) for match in _PAN_CANDIDATE.finditer(value))


def redact_pans(text: str) -> str:
    """Replace every Luhn-valid 13-19 digit run in ``text`` so it can be logged or stored."""

    def _sub(match: re.Match[str]) -> str:
        return "[PAN-REDACTED]" if _is_pan(match.group()) else match.group()

    return _PAN_CANDIDATE.sub(_sub, text)


class TransactionCodec:
    """Decode and validate transactions; encode them for producers.

    ``now`` is injectable so tests can pin the clock used by the future-timestamp check.
    """

    def __init__(
        self, *, max_amount: float = MAX_AMOUNT, max_future_skew_s: float = MAX_FUTURE_SKEW_S
    ) -> None:
        self._decoder = msgspec.json.Decoder(Transaction)
        self._encoder = msgspec.json.Encoder()
        self._max_amount = max_amount
        self._max_future_skew_s = max_future_skew_s

    def encode(self, tx: Transaction) -> bytes:
        return self._encoder.encode(tx)

    def decode(self, raw: bytes, *, now: float) -> Transaction:
        """Return the validated transaction or raise :class:`InvalidEvent` with a reason code."""
        try:
            tx = self._decoder.decode(raw)
        except msgspec.DecodeError:
            raise self._diagnose(raw) from None
        self._check_values(tx, now)
        return tx

    def _check_values(self, tx: Transaction, now: float) -> None:
        if looks_like_pan(tx.card_id):
            raise _pan_in_card_id()
        amount = tx.amount
        # zero is valid: account-verification authorisations carry no amount
        if not math.isfinite(amount) or amount < 0 or amount > self._max_amount:
            raise InvalidEvent(
                "invalid_amount",
                f"amount {amount!r} must be >= 0 and <= {self._max_amount:g}",
            )
        if tx.event_time.tzinfo is None:
            raise InvalidEvent(
                "invalid_timestamp",
                f"event_time {tx.event_time.isoformat()!r} has no timezone; send UTC with 'Z'",
            )
        skew = tx.event_ts - now
        if skew > self._max_future_skew_s:
            raise InvalidEvent(
                "future_timestamp",
                f"event_time {tx.event_time.isoformat()!r} is {skew:.0f}s in the future "
                f"(limit {self._max_future_skew_s:g}s); check the producer's clock",
            )

    def _diagnose(self, raw: bytes) -> InvalidEvent:
        """Slow path, for rejected events only: say precisely what is wrong."""
        try:
            obj: Any = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            return InvalidEvent("malformed_json", str(exc))
        if not isinstance(obj, dict):
            return InvalidEvent(
                "malformed_json", f"expected a JSON object, got {type(obj).__name__}"
            )
        missing = [f for f in REQUIRED_FIELDS if f not in obj or obj[f] is None]
        if missing:
            return InvalidEvent("missing_field", f"missing required field(s): {', '.join(missing)}")
        if isinstance(obj.get("card_id"), str) and looks_like_pan(obj["card_id"]):
            return _pan_in_card_id()
        try:
            self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            message = redact_pans(str(exc))
            if ", got `" in message:
                return InvalidEvent("wrong_type", message)
            if "$.amount" in message:
                return InvalidEvent("invalid_amount", message)
            if "$.event_time" in message:
                return InvalidEvent("invalid_timestamp", message)
            return InvalidEvent("wrong_type", message)
        return InvalidEvent("malformed_json", "undecodable event")  # pragma: no cover


# Only card_id is checked: in other identifiers a Luhn test is wrong too often to refuse
# payments on it (every IMEI as a device_id, a tenth of 15-digit merchant ids, 0.2 % of
# UUIDs, whose digit runs it joins across dashes)
def _pan_in_card_id() -> InvalidEvent:
    return InvalidEvent(
        "pan_in_card_id", "card_id looks like a card number; send the tokenised card id instead"
    )


def utc_now() -> float:
    return datetime.now(UTC).timestamp()
