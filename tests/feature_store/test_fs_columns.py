"""The handbook column preset: its raw columns in ours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from feature_store import HistoryColumnsError, HistoryFormatError, read_history
from feature_store.columns import apply_column_preset


def test_the_handbook_scenarios_are_named_and_unknown_codes_kept() -> None:
    raw = pd.DataFrame(
        {
            "TRANSACTION_ID": range(5),
            "TX_DATETIME": pd.date_range("2018-04-01", periods=5, freq="h"),
            "CUSTOMER_ID": [1, 1, 2, 2, 3],
            "TERMINAL_ID": [9, 8, 9, 8, 9],
            "TX_AMOUNT": [10.0, 300.0, 20.0, 30.0, 40.0],
            "TX_FRAUD": [0, 1, 1, 1, 1],
            "TX_FRAUD_SCENARIO": [0, 1, 2, 3, 7],
        }
    )
    history = apply_column_preset(raw, "handbook")
    assert history["fraud_scenario"].tolist() == [
        "none",
        "amount_over_220",
        "compromised_terminal",
        "compromised_customer",
        "7",
    ]
    assert history["amount"].tolist() == raw["TX_AMOUNT"].tolist()


def test_a_missing_handbook_scenario_reads_unknown() -> None:
    raw = pd.DataFrame(
        {
            "TRANSACTION_ID": range(3),
            "TX_DATETIME": pd.date_range("2018-04-01", periods=3, freq="h"),
            "CUSTOMER_ID": [1, 2, 3],
            "TERMINAL_ID": [9, 9, 9],
            "TX_AMOUNT": [10.0, 20.0, 30.0],
            "TX_FRAUD": [0, 1, 1],
            "TX_FRAUD_SCENARIO": [0, 2, None],
        }
    )
    history = apply_column_preset(raw, "handbook")
    assert history["fraud_scenario"].tolist() == ["none", "compromised_terminal", "unknown"]


def test_a_csv_with_times_in_mixed_iso_spellings_is_read_and_a_bad_one_refused(
    tmp_path: Path,
) -> None:
    """pandas takes the first value's spelling for a whole column: a CSV written by two
    tools (a Z suffix here, +00:00 there) failed with a traceback in the split."""
    rows = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c"],
            "event_time": ["2026-03-01T12:00:00Z", "2026-03-01 13:00:00.5+00:00", "2026-03-02"],
            "card_id": ["x", "y", "z"],
            "amount": [1.0, 2.0, 3.0],
            "is_fraud": [1, 0, 1],
            # "NaT" is how str() writes a missing time; "... UTC" how some exports do
            "label_time": ["2026-03-03 00:00:00 UTC", "NaT", "2026-03-04 01:00:00+01:00"],
        }
    )
    rows.to_csv(tmp_path / "mixed.csv", index=False)
    frame = read_history(tmp_path / "mixed.csv")
    assert frame["event_time"].dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist() == [
        "2026-03-01 12:00:00.000000",
        "2026-03-01 13:00:00.500000",
        "2026-03-02 00:00:00.000000",
    ]
    assert frame["label_time"].isna().tolist() == [False, True, False]
    assert frame["label_time"].iloc[2] == pd.Timestamp("2026-03-04T00:00:00Z")
    assert frame["label_time"].iloc[0] == pd.Timestamp("2026-03-03T00:00:00Z")
    rows.loc[2, "label_time"] = "soon"
    rows.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(HistoryColumnsError, match=r"1 label_time value\(s\) are not ISO 8601 "
                       r"times \(e.g. \['soon'\], transaction_id \['c'\]\)"):  # fmt: skip
        read_history(tmp_path / "bad.csv")
    rows.drop(columns="transaction_id").to_csv(tmp_path / "no_ids.csv", index=False)
    with pytest.raises(HistoryColumnsError, match=r"\['soon'\], rows \[2\], counted from 0\)"):
        read_history(tmp_path / "no_ids.csv")


def _handbook_csv(tmp_path: Path, **columns: Sequence[object]) -> Path:
    raw = pd.DataFrame(
        {
            "TRANSACTION_ID": range(3),
            "TX_DATETIME": ["2018-04-01 00:00:00", "2018-04-01T01:00:00Z", "2018-04-01 02:00"],
            "CUSTOMER_ID": [1, 2, 3],
            "TERMINAL_ID": [9, 9, 9],
            "TX_AMOUNT": [10.0, 20.0, 30.0],
            "TX_FRAUD": [0, 1, 0],
        }
        | columns
    )
    raw.to_csv(tmp_path / "handbook.csv", index=False)
    return tmp_path / "handbook.csv"


def test_a_handbook_csv_reads_mixed_spellings_and_names_a_bad_time(tmp_path: Path) -> None:
    """The preset parsed its times with a plain to_datetime: one other spelling, or one
    value that is not a time, was a pandas traceback."""
    frame = read_history(_handbook_csv(tmp_path), columns="handbook")
    assert frame["event_time"].dt.hour.tolist() == [0, 1, 2]
    bad = _handbook_csv(tmp_path, TX_DATETIME=["2018-04-01 00:00:00", "yesterday", "2018-04-01"])
    # in the file's own names, which its user can find
    with pytest.raises(
        HistoryColumnsError,
        match=r"1 TX_DATETIME value\(s\) .* \['yesterday'\], TRANSACTION_ID \[1\]\)",
    ):
        read_history(bad, columns="handbook")


@pytest.mark.parametrize(
    ("labels", "quoted"),
    [([0, None, 1], "[nan]"), ([0, "yes", 1], "['yes']"), ([0, 2, 1], "[2]")],
    ids=["missing", "text", "not 0 or 1"],
)
def test_a_label_that_is_not_0_or_1_is_refused_naming_it(
    tmp_path: Path, labels: list[object], quoted: str
) -> None:
    """A missing label read as a fraud (its card then left the test set), text was a
    traceback, and a 2 an XGBoost error with a native stack dump."""
    with pytest.raises(HistoryColumnsError) as refused:
        read_history(_handbook_csv(tmp_path, TX_FRAUD=labels), columns="handbook")
    assert (
        f"1 row(s) whose TX_FRAUD is not 0 or 1 (values {quoted}, e.g. TRANSACTION_ID [1];"
        in str(refused.value)
    )


@pytest.mark.parametrize("text", [["0", "1", "0"], ["false", "True", " FALSE"]])
def test_labels_written_as_text_are_read_as_numbers(tmp_path: Path, text: list[str]) -> None:
    """In a Parquet text column (a CSV reader makes true / false booleans itself)."""
    path = _handbook_csv(tmp_path, TX_FRAUD=text)
    frame = pd.read_csv(path, dtype={"TX_FRAUD": str}, keep_default_na=False)
    frame.to_parquet(tmp_path / "text_labels.parquet")
    history = read_history(tmp_path / "text_labels.parquet", columns="handbook")
    assert history["is_fraud"].tolist() == [0, 1, 0]


def test_many_bad_label_values_are_counted_not_only_the_first(tmp_path: Path) -> None:
    labels = [str(v) for v in range(2, 9)]
    raw = pd.read_csv(_handbook_csv(tmp_path))
    many = pd.concat([raw] * 3, ignore_index=True).head(7)
    many = many.assign(TRANSACTION_ID=range(7), TX_FRAUD=labels)
    many.to_csv(tmp_path / "many.csv", index=False)
    with pytest.raises(HistoryColumnsError, match=r"values \[2, 3, 4, 5, 6\] and 2 more"):
        read_history(tmp_path / "many.csv", columns="handbook")


def test_a_missing_or_empty_history_says_what_writes_one(tmp_path: Path) -> None:
    """A new deployment's first scheduled run, before the archiver wrote anything: an empty
    directory read as a table "with no event_time column; columns: []"."""
    with pytest.raises(FileNotFoundError, match="`fraud archive` writes one"):
        read_history(tmp_path / "archive")
    (tmp_path / "archive").mkdir()
    with pytest.raises(HistoryFormatError, match="is an empty directory: nothing archived yet"):
        read_history(tmp_path / "archive")


def test_the_handbook_preset_on_our_own_columns_says_to_drop_it() -> None:
    """`fraud train --history ARCHIVE --columns handbook` listed what was missing only."""
    ours = pd.DataFrame(
        {"event_time": [], "card_id": [], "merchant_id": [], "amount": [], "transaction_id": []}
    )
    with pytest.raises(HistoryColumnsError, match=r"own columns: drop --columns$"):
        apply_column_preset(ours, "handbook")
    with pytest.raises(HistoryColumnsError, match=r"\(present: \['x'\]\)$"):
        apply_column_preset(pd.DataFrame({"x": []}), "handbook")


def test_a_csv_in_another_encoding_or_separator_is_refused_with_its_own_fix(
    tmp_path: Path,
) -> None:
    """Both were told to give "a .csv file", which they were."""
    rows = pd.DataFrame(
        {
            "transaction_id": ["a", "b"],
            "event_time": ["2026-03-01T12:00:00Z", "2026-03-01T13:00:00Z"],
            "card_id": ["x", "y"],
            "amount": [1.0, 2.0],
            "is_fraud": [1, 0],
        }
    )
    rows.to_csv(tmp_path / "utf16.csv", index=False, encoding="utf-16")
    with pytest.raises(HistoryFormatError, match=r"UnicodeDecodeError: .*; save the file as UTF-8"):
        read_history(tmp_path / "utf16.csv")
    rows.to_csv(tmp_path / "semicolons.csv", index=False, sep=";")
    for columns in ("native", "handbook"):  # the preset refused first, without the hint
        with pytest.raises(HistoryColumnsError, match=r"reads as one column \('transaction_id;"):
            read_history(tmp_path / "semicolons.csv", columns=columns)
    (tmp_path / "damaged.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(HistoryFormatError, match=r"the file is damaged: restore it from a backup"):
        read_history(tmp_path / "damaged.parquet")
