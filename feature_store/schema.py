"""The transaction event contract and its fast JSON codec.

Events arrive as JSON with at least ``transaction_id``, ``event_time`` (RFC 3339 with a
timezone), ``card_id``, ``merchant_id`` and ``amount``. Decoding is one typed msgspec pass;
only a rejected event pays for a second, slower pass that names the reason.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import msgspec

from feature_store.errors import InvalidEvent

__all__ = [
    "CODE_FIELDS",
    "MAX_AMOUNT",
    "MAX_CODE_LENGTH",
    "MAX_FUTURE_SKEW_S",
    "MAX_ID_LENGTH",
    "REQUIRED_FIELDS",
    "Transaction",
    "TransactionCodec",
    "looks_like_pan",
    "redact_pans",
]

MAX_AMOUNT: Final = 1_000_000.0
MAX_FUTURE_SKEW_S: Final = 300.0

MAX_ID_LENGTH: Final = 64
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
MAX_CODE_LENGTH: Final = 32
OptionalCode = Annotated[str, msgspec.Meta(max_length=MAX_CODE_LENGTH)] | None


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
# the optional codes, as the contract lists them
CODE_FIELDS: Final = tuple(f for f in Transaction.__struct_fields__ if f not in REQUIRED_FIELDS)

# Digits in groups, as card numbers are written and typed: joined by up to four of any
# space (tab, newline, no-break, thin, zero-width, soft hyphen, word joiner), dash
# (hyphens, en, em, minus, full-width), dot, slash or underscore, or by those escaped as
# JSON and repr() write them (a dead letter's payload is the raw JSON). Inside such a chain
# a card number is a plain run of 13-19 digits, or groups laid out as cards print them,
# one separator throughout: any 13 digits across short groups would take dates, amounts
# and tables (one in ten passes Luhn), and the longest run alone would hide a number next
# to a CVV or a quantity.
_SEPARATOR = (
    r"(?:[\s./_\u00ad\u200b-\u200d\u2060\ufeff\u2010-\u2015\u2212\uff0d-]"
    r"|\\[tnr]|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2})"
)
_DIGIT_CHAIN = re.compile(rf"\d+(?:{_SEPARATOR}{{1,4}}\d+)*")
# digits, not those inside an escape (\u00a0): an escape is skipped whole
_DIGIT_GROUP = re.compile(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|(\d+)")
_CARD_LAYOUTS: Final = frozenset(
    {(4, 4, 4, n) for n in (1, 2, 3, 4, 7)}
    | {(4, 4, 4, 4, n) for n in (1, 2, 3)}
    | {(4, 6, 5), (4, 6, 4), (5, 5, 5), (6, 6, 4), (4, 12), (12, 4), (6, 10), (6, 13)}
)
_FIRST_GROUP_SIZES: Final = frozenset(layout[0] for layout in _CARD_LAYOUTS)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)  # int(): a full-width or other script's digit too
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _one_separator(text: str, window: list[re.Match[str]]) -> bool:
    """A card is printed with one separator throughout ("4303.7496 9424.5638" is two
    amounts)."""
    return len({text[a.end() : b.start()] for a, b in itertools.pairwise(window)}) == 1


def _pan_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where ``text`` holds Luhn-valid card numbers, leftmost and longest first."""
    for chain in _DIGIT_CHAIN.finditer(text):
        if chain.end() - chain.start() < 13:  # too short for 13 digits: most chains
            continue
        groups = [g for g in _DIGIT_GROUP.finditer(text, chain.start(), chain.end()) if g.group(1)]
        sizes = [g.end() - g.start() for g in groups]
        i = 0
        while i < len(groups):
            last = None
            if sizes[i] in _FIRST_GROUP_SIZES:
                for n in (5, 4, 3, 2):
                    window = groups[i : i + n]
                    if (
                        len(window) == n
                        and tuple(sizes[i : i + n]) in _CARD_LAYOUTS
                        and _one_separator(text, window)
                        and _luhn_ok("".join(g.group() for g in window))
                    ):
                        last = i + n - 1
                        break
            # a decimal's fraction (2.8130040000000003) is not a card number
            fraction = i > 0 and text[groups[i - 1].end() : groups[i].start()] == "."
            if last is None and 13 <= sizes[i] <= 19 and not fraction:
                last = i if _luhn_ok(groups[i].group()) else None
            if last is not None:
                yield groups[i].start(), groups[last].end()
                i = last
            i += 1


def looks_like_pan(value: str) -> bool:
    """True when ``value`` holds a card number: a Luhn-valid 13-19 digit run, or groups
    laid out as cards print them."""
    return next(_pan_spans(value), None) is not None


def redact_pans(text: str) -> str:
    """Replace every card number in ``text`` (see :func:`looks_like_pan`) so it can be
    logged or stored."""
    spans = list(_pan_spans(text))
    if not spans:
        return text
    parts, at = [], 0
    for start, end in spans:
        parts += [text[at:start], "[PAN-REDACTED]"]
        at = end
    return "".join([*parts, text[at:]])


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

    def decode(self, raw: bytes | None, *, now: float) -> Transaction:
        """Return the validated transaction or raise :class:`InvalidEvent` with a reason code."""
        if raw is None:  # a record without a value: a tombstone, or send(value=None)
            raise InvalidEvent("malformed_json", "empty message (tombstone)")
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
