"""What a history must hold before any feature is computed over it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.errors import HistoryColumnsError
from feature_store.schema import looks_like_pan

__all__ = ["card_number_rows", "ids_as_text", "label_numbers", "validate_history", "where_rows"]


def label_numbers(labels: pd.Series) -> pd.Series:
    """Labels as numbers (NaN where not one): 0/1 however written, true/false as text too
    (a CSV reader reads them as booleans, a Parquet text column keeps the words)."""
    if pd.api.types.is_bool_dtype(labels) or pd.api.types.is_numeric_dtype(labels):
        return pd.to_numeric(labels, errors="coerce")
    words = labels.astype("string").str.strip().str.lower().replace({"true": "1", "false": "0"})
    return pd.to_numeric(words, errors="coerce")


def ids_as_text(ids: pd.Series) -> pd.Series:
    """Ids as the stream's text ids: a numbered id as its digits (5411, not the float
    column's 5411.0 or 1.2e+16, as a column with blanks is read)."""
    if pd.api.types.is_float_dtype(ids):
        numbers = ids.dropna()
        if (numbers % 1 == 0).all():
            if (numbers.abs() < 2**63).all():
                return ids.astype("Int64").astype("string")
            # past int64: each written out in full (whole floats are exact integers)
            return ids.map(lambda v: f"{v:.0f}", na_action="ignore").astype("string")
    return ids.astype("string")


def card_number_rows(cards: pd.Series) -> np.ndarray:
    """Rows whose card id holds a card number, as the stream's contract tests it: on the
    id's text (see :func:`ids_as_text`)."""
    distinct = pd.Series(pd.unique(cards.dropna()))
    texts = ids_as_text(distinct)
    # a card number has 13 digits at least: only such ids go through the (Python) test;
    # digits of any script, as Python's (and so the stream's) test counts them
    digits = pc.count_substring_regex(pa.array(texts.tolist(), type=pa.string()), r"\p{Nd}")
    enough = np.asarray(pc.greater_equal(digits, 13).to_numpy(zero_copy_only=False), dtype=bool)
    pans = [
        card
        for card, text in zip(distinct[enough], texts[enough], strict=True)
        if looks_like_pan(text)
    ]
    if not pans:
        return np.zeros(len(cards), dtype=bool)
    return cards.isin(pans).to_numpy()


def _bad_labels(labels: pd.Series) -> np.ndarray:
    """Rows whose label is missing or not 0/1, in whatever type it was read."""
    return (~label_numbers(labels).isin([0, 1])).to_numpy()


def _missing_ids(ids: pd.Series) -> np.ndarray:
    """Rows whose id is missing or empty text, as the stream's contract refuses them (an
    id of spaces it takes, and so its archive may hold one)."""
    missing = ids.isna().to_numpy()
    if pd.api.types.is_string_dtype(ids) or pd.api.types.is_object_dtype(ids):
        empty = ids.astype("string") == ""
        return missing | empty.fillna(False).to_numpy(dtype=bool)
    return missing


def _duplicated(ids: pd.Series) -> np.ndarray:
    """Rows whose id an earlier row has. Histories rarely have any, so a one-pass uniqueness
    check comes first and the mask only when it fails: Arrow text (pandas' mask factorises
    it, then hashes the codes again) counts its factorised values; other ids ask an index,
    which checks sorted ones (the handbook's) without hashing."""
    if isinstance(ids.dtype, pd.StringDtype) and ids.dtype.storage == "pyarrow":
        unique = len(pd.factorize(ids, use_na_sentinel=False)[1]) == len(ids)
    else:
        unique = pd.Index(ids).is_unique
    return np.zeros(len(ids), dtype=bool) if unique else ids.duplicated().to_numpy()


def where_rows(frame: pd.DataFrame, rows: np.ndarray, names: Mapping[str, str]) -> str:
    """The first few of ``rows`` (a mask), by their transaction ids where there are any."""
    if "transaction_id" in frame.columns:
        ids = frame.loc[rows, "transaction_id"].head(3).tolist()
        return f"{names.get('transaction_id', 'transaction_id')} {ids}"
    return f"rows {rows.nonzero()[0][:3].tolist()}, counted from 0"


def validate_history(frame: pd.DataFrame, *, names: Mapping[str, str] | None = None) -> None:
    """Refuse what no feature can be honest about: bad amounts, duplicate ids, no time.
    ``names`` maps our columns to the source's, for the message (see
    :func:`~feature_store.columns.source_column_names`)."""
    names = names or {}
    problems = []
    if "amount" in frame.columns:
        amount = pd.to_numeric(frame["amount"], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(amount) | (amount < 0)
        if bad.any():
            problems.append(
                f"{int(bad.sum())} row(s) with a missing, negative or NaN "
                f"{names.get('amount', 'amount')} (e.g. {where_rows(frame, bad, names)})"
            )
    if "transaction_id" in frame.columns:
        duplicated = _duplicated(frame["transaction_id"])
        if duplicated.any():
            ids = frame.loc[duplicated, "transaction_id"].drop_duplicates().head(3).tolist()
            problems.append(
                f"{int(duplicated.sum())} duplicate "
                f"{names.get('transaction_id', 'transaction_id')}(s) (e.g. {ids})"
            )
    for column in ("transaction_id", "card_id", "merchant_id"):
        # the stream refuses such a payment; here all of them would be one card's
        if column in frame.columns and (missing := _missing_ids(frame[column])).any():
            problems.append(
                f"{int(missing.sum())} row(s) with a missing or empty "
                f"{names.get(column, column)} (e.g. {where_rows(frame, missing, names)})"
            )
    missing_time = frame["event_time"].isna().to_numpy()
    if missing_time.any():
        problems.append(
            f"{int(missing_time.sum())} row(s) without {names.get('event_time', 'event_time')} "
            f"(e.g. {where_rows(frame, missing_time, names)})"
        )
    if "is_fraud" in frame.columns and (bad := _bad_labels(frame["is_fraud"])).any():
        # a missing label read as True: its card counted as compromised, the test set cut
        distinct = frame.loc[bad, "is_fraud"].drop_duplicates()
        values = f"{distinct.head(5).tolist()}" + (
            f" and {len(distinct) - 5} more" if len(distinct) > 5 else ""
        )
        problems.append(
            f"{int(bad.sum())} row(s) whose {names.get('is_fraud', 'is_fraud')} is not 0 or 1 "
            f"(values {values}, e.g. {where_rows(frame, bad, names)}; a payment not known to be "
            "fraud is 0)"
        )
    if problems:
        raise HistoryColumnsError(
            "the history cannot be used as it is: "
            + "; ".join(problems)
            + ". Fix or drop those rows first: features over them would be made up"
        )
