"""Point in time: no future event, no early label, and defined behaviour for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_store import CORE_FEATURE_SET, HistoryColumnsError, compute_offline_features
from feature_store.definitions import (
    DAY_S,
    FeatureSet,
    FraudAmountMean,
    FraudRate,
    KnownFraudRun,
    WindowAggregate,
)
from feature_store.history import read_history

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def _history(rows: list[tuple[str, float, str, str, float, int]]) -> pd.DataFrame:
    """rows: (id, hours after T0, card, merchant, amount, is_fraud)."""
    return pd.DataFrame(
        {
            "transaction_id": [r[0] for r in rows],
            "event_time": [T0 + pd.Timedelta(hours=r[1]) for r in rows],
            "card_id": [r[2] for r in rows],
            "merchant_id": [r[3] for r in rows],
            "amount": [r[4] for r in rows],
            "is_fraud": [r[5] for r in rows],
        }
    )


def test_a_later_event_changes_no_earlier_feature(small_history: pd.DataFrame) -> None:
    cutoff = small_history["event_time"].quantile(0.5)
    early = small_history[small_history["event_time"] <= cutoff]
    full = compute_offline_features(CORE_FEATURE_SET, small_history).loc[early.index]
    alone = compute_offline_features(CORE_FEATURE_SET, early)
    pd.testing.assert_frame_equal(full, alone)


def test_a_label_counts_only_once_it_is_known() -> None:
    rate = FraudRate(entity="merchant", window_s=7 * DAY_S, delay_s=1 * DAY_S)
    fs = FeatureSet(name="t", version=1, features=(rate,))
    history = _history(
        [("f", 0, "c1", "m", 10.0, 1), *[(f"x{h}", h, "c2", "m", 10.0, 0) for h in (30, 60, 90)]]
    )
    label_at = T0 + pd.Timedelta(hours=70)
    history["label_time"] = pd.Series([label_at, pd.NaT, pd.NaT, pd.NaT])
    values = compute_offline_features(fs, history)[rate.name].tolist()
    # at 30h and 60h the fraud (0h) is in the delayed window but its label is not known yet
    assert values == pytest.approx([0.0, 0.0, 0.0, 1 / 3])  # at 90h: 1 fraud of 3 in (-102h, 66h]


def test_the_fraud_run_is_the_known_frauds_after_the_latest_other_event() -> None:
    length = KnownFraudRun(entity="merchant", measure="length", horizon_s=5 * DAY_S, delay_s=DAY_S)
    days = KnownFraudRun(entity="merchant", measure="days", horizon_s=5 * DAY_S, delay_s=DAY_S)
    mean = FraudAmountMean(entity="merchant", window_s=5 * DAY_S, delay_s=DAY_S)
    fs = FeatureSet(name="t", version=1, features=(length, days, mean))
    d = 24  # hours
    history = _history(
        [
            ("a", 0, "c1", "m", 10.0, 1),  # a fraud before a legitimate payment: not in the run
            ("b", 1 * d, "c2", "m", 10.0, 0),
            ("c", 2 * d, "c3", "m", 30.0, 1),  # tied with a legitimate payment: not in the run
            ("c-tie", 2 * d, "c4", "m", 10.0, 0),
            ("d", 3 * d, "c5", "m", 20.0, 1),
            ("e", 4 * d, "c6", "m", 40.0, 1),
            ("q1", 5 * d + 1, "c7", "m", 1.0, 0),  # queries: the window ends a day before
            ("q2", 5 * d + 2, "c8", "other", 1.0, 0),
        ]
    )
    history["label_time"] = history["event_time"] + pd.Timedelta(hours=1)
    values = compute_offline_features(fs, history)
    q1 = values.iloc[6].tolist()
    # (q1 - 6d, q1 - 1d] holds a..e; the run is d and e, from day 3 to q1 at day 5 + 1h
    assert q1 == pytest.approx([2.0, 2 + 1 / 24, (10 + 30 + 20 + 40) / 4])
    assert values.iloc[7].tolist()[0] == 0.0  # another merchant: no run, no fraud amounts
    assert np.isnan(values.iloc[7].tolist()[1])
    assert np.isnan(values.iloc[7].tolist()[2])


def test_a_fraud_whose_label_is_not_yet_known_ends_the_run() -> None:
    length = KnownFraudRun(entity="merchant", measure="length", horizon_s=5 * DAY_S, delay_s=DAY_S)
    fs = FeatureSet(name="t", version=1, features=(length,))
    d = 24
    history = _history(
        [
            ("a", 0, "c1", "m", 10.0, 1),
            ("b", 1 * d, "c2", "m", 10.0, 1),  # its label comes after q
            ("q", 3 * d, "c3", "m", 1.0, 0),
            ("r", 3 * d + 10, "c4", "m", 1.0, 0),  # by now it is known
        ]
    )
    history["label_time"] = history["event_time"] + pd.Timedelta(hours=1)
    history.loc[1, "label_time"] = T0 + pd.Timedelta(hours=3 * d + 5)
    values = compute_offline_features(fs, history)[length.name].tolist()
    # b sees a; q sees a and b, but b's label is not known yet; r sees both known
    assert values == [0.0, 1.0, 0.0, 2.0]


def test_without_label_time_a_label_is_known_after_the_label_delay() -> None:
    rate = FraudRate(entity="merchant", window_s=7 * DAY_S, delay_s=1 * DAY_S)
    fs = FeatureSet(name="t", version=1, features=(rate,))
    history = _history([("f", 0, "c1", "m", 10.0, 1), ("a", 30, "c2", "m", 1.0, 0)])
    assert compute_offline_features(fs, history, label_delay_s=2 * DAY_S)[rate.name].tolist() == [
        0.0,
        0.0,
    ]
    assert compute_offline_features(fs, history, label_delay_s=DAY_S)[rate.name].tolist() == [
        0.0,
        1.0,
    ]


def test_the_current_transaction_is_in_its_window_and_a_tie_in_order() -> None:
    count = WindowAggregate(entity="card", aggregation="count", window_s=3600)
    fs = FeatureSet(name="t", version=1, features=(count,))
    history = _history(
        [("b", 1, "c", "m", 1.0, 0), ("a", 1, "c", "m", 1.0, 0), ("c", 0, "c", "m", 1.0, 0)]
    )
    # same time: "a" before "b" by id; the event exactly 1h earlier is out of (t - 1h, t]
    assert compute_offline_features(fs, history)[count.name].tolist() == [2.0, 1.0, 1.0]


def test_a_feature_whose_field_is_missing_is_left_out() -> None:
    without = CORE_FEATURE_SET.available_for(frozenset({"transaction_id", "amount"}))
    assert "channel_is_online" in CORE_FEATURE_SET.names
    assert "channel_is_online" not in without.names
    assert without.fingerprint != CORE_FEATURE_SET.fingerprint


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": [np.nan, 1.0]}, "negative or NaN amount"),
        ({"amount": [-1.0, 1.0]}, "negative or NaN amount"),
        ({"transaction_id": ["same", "same"]}, "duplicate transaction_id"),
        # all of them would be one card, compromised by any one fraud among them
        ({"card_id": [None, "c"]}, r"1 row\(s\) with a missing or empty card_id .*\['a'\]"),
        ({"card_id": ["c", ""]}, r"1 row\(s\) with a missing or empty card_id .*\['b'\]"),
        ({"merchant_id": ["", "m"]}, r"1 row\(s\) with a missing or empty merchant_id"),
        ({"transaction_id": [None, "b"]}, "missing or empty transaction_id"),
    ],
)
def test_a_bad_history_is_refused_with_the_rows_named(
    tmp_path: Path, change: dict[str, list[object]], message: str
) -> None:
    history = _history([("a", 0, "c", "m", 1.0, 0), ("b", 1, "c", "m", 2.0, 0)])
    for column, values in change.items():
        history[column] = pd.Series(values)
    path = tmp_path / "bad.parquet"
    history.to_parquet(path)
    with pytest.raises(HistoryColumnsError, match=message):
        read_history(path)


@pytest.mark.parametrize(
    "pans",
    [
        ["4111 1111 1111 1111", "5500-0000-0000-0004"],
        [4111111111111111, 5500000000000004],  # numbered ids, as the stream reads their digits
        [4111111111111111.0, 5500000000000004.0],  # a column with blanks reads as floats
        # digits of another script: Python's test (and so the stream's) counts them
        ["\uff14" + "\uff11" * 15, "\u0665\u0665\u0660\u0660" + "\u0660" * 11 + "\u0664"],
    ],
    ids=["text", "int", "float", "full-width and Arabic-Indic"],
)
def test_payments_whose_card_id_is_a_card_number_are_left_out_as_the_stream_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pans: list[object]
) -> None:
    """The stream sends them to its dead letters: a model trained on them, or an online
    store warmed with them (a card number in a Redis key), would see what it never scores."""
    history = _history([("a", 0, "c", "m", 1.0, 0), ("b", 1, "c", "m", 2.0, 1)])
    history = pd.concat([history] * 2, ignore_index=True)
    # a producer that put the card number in the payment's id too: the warning quotes ids
    history["transaction_id"] = ["tx-4111111111111111", "b", "c", "d"]
    other: object = {str: "7", int: 7, float: 7.0}[type(pans[0])]
    history["card_id"] = pd.Series([pans[0], other, pans[1], other])
    history.to_parquet(path := tmp_path / "h.parquet")
    read = read_history(path)
    assert read["transaction_id"].tolist() == ["b", "d"]
    assert "2 payment(s) whose card_id holds a card number left out" in caplog.text
    assert "transaction_id ['tx-[PAN-REDACTED]', 'c']" in caplog.text
    assert "1111" not in caplog.text
    assert "0004" not in caplog.text


def test_a_payment_resent_with_the_cards_token_is_no_duplicate(tmp_path: Path) -> None:
    """The stream dead-lettered the first sending (a card number as card_id), so the
    history's checks never see it: the resent one, same transaction_id, is read."""
    history = _history([("a", 0, "tok_1", "m", 1.0, 0), ("b", 1, "tok_1", "m", 2.0, 0)])
    first = history.iloc[[1]].assign(card_id="4111111111111111", amount=-1.0)
    pd.concat([first, history], ignore_index=True).to_parquet(path := tmp_path / "h.parquet")
    read = read_history(path)
    assert read["transaction_id"].tolist() == ["a", "b"]
    assert read["card_id"].tolist() == ["tok_1", "tok_1"]


def test_numbered_card_ids_past_int64_are_kept_and_card_numbers_among_them_left_out(
    tmp_path: Path,
) -> None:
    """A float column of whole numbers is read as digits; 1e19 has no int64 to pass through."""
    history = _history([(str(i), i, "c", "m", 1.0, 0) for i in range(3)])
    history["card_id"] = [1e19, 4111111111111111.0, 7.0]
    history.to_parquet(path := tmp_path / "h.parquet")
    assert read_history(path)["transaction_id"].tolist() == ["0", "2"]


def test_an_id_that_only_looks_long_is_kept(tmp_path: Path) -> None:
    """Thirteen digits that fail Luhn, a short number, a token with digits: no card."""
    history = _history([(str(i), i, "c", "m", 1.0, 0) for i in range(3)])
    history["card_id"] = ["4111111111111112", "12345", "tok_4111111111111"]
    history.to_parquet(path := tmp_path / "h.parquet")
    assert len(read_history(path)) == 3


def test_a_history_without_needed_columns_is_refused() -> None:
    with pytest.raises(HistoryColumnsError, match="merchant_id"):
        compute_offline_features(CORE_FEATURE_SET, _history([]).drop(columns=["merchant_id"]))


def test_names_read_as_english_and_the_fingerprint_tracks_definitions() -> None:
    assert "card_amount_mean_30d" in CORE_FEATURE_SET.names
    assert "merchant_fraud_rate_7d_delay7d" in CORE_FEATURE_SET.names
    assert "is_new_merchant_for_card_30d" in CORE_FEATURE_SET.names
    changed = FeatureSet(name="core", version=2, features=CORE_FEATURE_SET.features[:-1])
    assert changed.fingerprint != CORE_FEATURE_SET.fingerprint


def test_epoch_numbers_as_event_time_are_refused_with_the_fix(tmp_path: Path) -> None:
    """pandas reads them as nanoseconds: epoch milliseconds were payments of 1970."""
    history = _history([("a", 0, "c", "m", 1.0, 0), ("b", 1, "c", "m", 2.0, 0)])
    history["event_time"] = [1_733_616_000_000, 1_733_616_060_000]
    history.to_parquet(path := tmp_path / "h.parquet")
    with pytest.raises(HistoryColumnsError, match=r"event_time holds numbers \(e.g. \[1733616"):
        read_history(path)


def test_an_empty_label_time_column_is_no_time(tmp_path: Path) -> None:
    """A CSV's empty column reads as float NaN: payments without label times, not numbers."""
    history = _history([("a", 0, "c", "m", 1.0, 0), ("b", 1, "c", "m", 2.0, 0)])
    history["label_time"] = np.nan
    history.to_parquet(path := tmp_path / "h.parquet")
    assert read_history(path)["label_time"].isna().all()
