"""The transaction contract: valid events decode; each kind of bad event gets its reason."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from feature_store import InvalidEvent, TransactionCodec, looks_like_pan, redact_pans
from feature_store.labels import LabelCodec

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC).timestamp()
VALID = {
    "transaction_id": "tx_1",
    "event_time": "2025-06-01T11:59:00Z",
    "card_id": "card_ab12",
    "merchant_id": "merch_9",
    "amount": 42.5,
}


def _raw(**changes: object) -> bytes:
    event = {**VALID, **changes}
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


def test_valid_event_decodes_with_optional_and_unknown_fields() -> None:
    tx = TransactionCodec().decode(_raw(mcc="5411", channel="online", extra="ignored"), now=NOW)
    assert tx.transaction_id == "tx_1"
    assert tx.amount == 42.5
    assert tx.mcc == "5411"
    assert tx.event_time == datetime(2025, 6, 1, 11, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "malformed_json"),  # a record without a value: a tombstone
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (_raw(amount=...), "missing_field"),
        (_raw(card_id=None), "missing_field"),
        (_raw(amount="12.0"), "wrong_type"),
        (_raw(card_id=123), "wrong_type"),
        (_raw(amount=-5), "invalid_amount"),
        (_raw(amount=5e9), "invalid_amount"),
        (_raw(event_time="yesterday"), "invalid_timestamp"),
        (_raw(event_time="2025-06-01T11:59:00"), "invalid_timestamp"),
        (_raw(event_time="2025-06-02T12:00:00Z"), "future_timestamp"),
        (_raw(card_id="4111 1111 1111 1111"), "pan_in_card_id"),
        (_raw(card_id="4111.1111.1111.1111"), "pan_in_card_id"),
        (_raw(card_id="5500005555555559", amount="x"), "pan_in_card_id"),
        (_raw(transaction_id=""), "wrong_type"),
    ],
)
def test_bad_events_are_rejected_with_a_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        TransactionCodec().decode(raw, now=NOW)
    assert caught.value.reason == reason
    assert "4111" not in str(caught.value)
    assert "5500005555555559" not in str(caught.value)


def test_a_label_record_without_a_value_is_an_invalid_label() -> None:
    """A tombstone on fraud.labels stopped the archiver at every restart (a TypeError)."""
    with pytest.raises(InvalidEvent) as caught:
        LabelCodec().decode(None)
    assert (caught.value.reason, caught.value.detail) == (
        "invalid_label",
        "empty message (tombstone)",
    )


def test_a_zero_amount_is_valid() -> None:
    """Account-verification authorisations carry no amount (the handbook has 42)."""
    assert TransactionCodec().decode(_raw(amount=0), now=NOW).amount == 0.0


def test_a_small_clock_skew_is_accepted() -> None:
    TransactionCodec().decode(_raw(event_time="2025-06-01T12:04:00Z"), now=NOW)


def test_pan_detection_needs_a_luhn_valid_run() -> None:
    assert looks_like_pan("4111111111111111")
    assert not looks_like_pan("4111111111111112")  # fails Luhn: an ordinary number
    assert not looks_like_pan("card_4111")
    text = "card 4111-1111-1111-1111 and order 1234567890123"
    assert redact_pans(text) == "card [PAN-REDACTED] and order 1234567890123"
    # a float in a log line (faust's "runtime=2.81...") is a number, even when its digits
    # pass Luhn; a card number written with dots is still one
    assert not looks_like_pan("runtime=4.111111111111111")
    assert redact_pans("4111.1111.1111.1111") == "[PAN-REDACTED]"
    # ...and a card number stored as a float (a column with a missing value) is one
    assert redact_pans('{"card_id": 4111111111111111.0}') == '{"card_id": [PAN-REDACTED].0}'
    assert looks_like_pan("5555555555554444.0")
    # nor is the fraction of a decimal with more digits than a card number has
    luhn_valid_19 = "1234567890123456785"
    assert looks_like_pan(luhn_valid_19)
    assert not looks_like_pan(f"drift=0.{luhn_valid_19}")


@pytest.mark.parametrize(
    "spelled",
    [
        "4111  1111  1111  1111",  # two spaces
        "4111\u00a01111\u00a01111\u00a01111",  # no-break spaces
        "4111\u20091111\u20091111\u20091111",  # thin spaces
        "4111\t1111\t1111\t1111",
        "4111\n1111\n1111\n1111",  # typed on lines of their own
        "4111/1111/1111/1111",
        "4111 - 1111 - 1111 - 1111",
        "4111 1111 1111 1111",
        "4111\u20131111\u20131111\u20131111",  # en dashes
        "4111\u200b1111\u200b1111\u200b1111",  # zero-width spaces
        "4111_1111_1111_1111",
        "3782 822463 10005",  # an American Express layout
    ],
)
def test_a_card_number_is_found_however_its_groups_are_separated(spelled: str) -> None:
    """A codec and a redaction that knew one space, dash or dot let these through to the
    topics, the console's pages and its audit trail."""
    assert looks_like_pan(spelled)
    assert redact_pans(f"note: {spelled}.") == "note: [PAN-REDACTED]."
    with pytest.raises(InvalidEvent) as caught:
        TransactionCodec().decode(_raw(card_id=spelled), now=NOW)
    assert caught.value.reason == "pan_in_card_id"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("card 4111111111111111\n123", "card [PAN-REDACTED]\n123"),  # its CVV below
        ("4111111111111111\t12.50", "[PAN-REDACTED]\t12.50"),
        ("row 3\t4111111111111111", "row 3\t[PAN-REDACTED]"),
        ("4111111111111111/01", "[PAN-REDACTED]/01"),
        ("ref 7 / 4111111111111111", "ref 7 / [PAN-REDACTED]"),
        ("2026-12-07 4111111111111111", "2026-12-07 [PAN-REDACTED]"),
        ("4111 1111 1111 1111 12/27", "[PAN-REDACTED] 12/27"),
        # as JSON (a dead letter's raw payload) and repr() escape its separators
        ('{"card_id": "4111\\t1111\\t1111\\t1111"}', '{"card_id": "[PAN-REDACTED]"}'),
        ('{"c": "4111\\u00a01111\\u00a01111\\u00a01111"}', '{"c": "[PAN-REDACTED]"}'),
        ("'4111\\xa01111\\xa01111\\xa01111'", "'[PAN-REDACTED]'"),
        ("4111\u00ad1111\u00ad1111\u00ad1111", "[PAN-REDACTED]"),  # soft hyphens
        ("4111\u20111111\u20111111\u20111111", "[PAN-REDACTED]"),  # non-breaking hyphens
        ("4111 -- 1111 -- 1111 -- 1111", "[PAN-REDACTED]"),
        ("6759 6498 2643 8453003", "[PAN-REDACTED]"),  # 4-4-4-7
        ("37828 22463 10005", "[PAN-REDACTED]"),  # 5-5-5
    ],
)
def test_a_card_number_next_to_other_numbers_is_found(text: str, redacted: str) -> None:
    """Taking the longest run of digits, then its Luhn test, hid a card number next to
    a CVV, a quantity or an amount (a review of the first widening)."""
    assert redact_pans(text) == redacted


def test_numbers_that_are_not_card_numbers_stay() -> None:
    """Times, dates, addresses, amounts and tables are left as they are, though 13 of
    their digits in a row pass the Luhn test one time in ten."""
    rng = random.Random(7)
    texts = [
        "2026-12-07 13:11:43.678287",
        "127.0.0.1:39092",
        "rows 1 2 3 of 10",
        "amount 4999.00 at 2026-12-07T13:11:43Z",
    ]
    for _ in range(200):  # four-digit numbers in rows, lists and pairs of amounts
        four = [str(rng.randrange(1000, 10000)) for _ in range(4)]
        texts += [
            ",".join(four),
            f"[{', '.join(four)}]",
            f"{four[0]}.{four[1]} {four[2]}.{four[3]}",
        ]
    for _ in range(500):
        day = date(2027, 1, 1) + timedelta(days=rng.randrange(700))
        later = day + timedelta(days=rng.randrange(1, 90))
        texts += [
            f"{day} - {later}",
            f"{day}\n{later}",
            f"{day:%d/%m/%Y} {later:%d/%m/%Y}",
            "\n".join(f"{rng.uniform(1, 1000):.2f}" for _ in range(4)),
            "\n".join(" ".join(str(rng.randrange(10)) for _ in range(4)) for _ in range(4)),
        ]
    assert [t for t in texts if redact_pans(t) != t] == []


def test_encode_round_trips() -> None:
    codec = TransactionCodec()
    tx = codec.decode(_raw(), now=NOW)
    assert codec.decode(codec.encode(tx), now=NOW) == tx
