"""What a history must hold before any feature is computed over it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from feature_store.errors import HistoryColumnsError
from feature_store.schema import MAX_AMOUNT, looks_like_pan, redact_pans

__all__ = ["label_numbers", "validate_history", "where_rows"]


def label_numbers(labels: pd.Series) -> pd.Series:
    """Labels as numbers (NaN where not one): 0/1 however written, true/false as text too
    (a CSV reader reads them as booleans, a Parquet text column keeps the words)."""
    if pd.api.types.is_bool_dtype(labels) or pd.api.types.is_numeric_dtype(labels):
        return pd.to_numeric(labels, errors="coerce")
    words = labels.astype("string").str.strip().str.lower().replace({"true": "1", "false": "0"})
    return pd.to_numeric(words, errors="coerce")


def _bad_labels(labels: pd.Series) -> np.ndarray:
    """Rows whose label is missing or not 0/1, in whatever type it was read."""
    return (~label_numbers(labels).isin([0, 1])).to_numpy()


def where_rows(frame: pd.DataFrame, rows: np.ndarray, names: Mapping[str, str]) -> str:
    """The first few of ``rows`` (a mask), by their transaction ids where there are any."""
    if "transaction_id" in frame.columns:
        ids = frame.loc[rows, "transaction_id"].head(3).tolist()
        return f"{names.get('transaction_id', 'transaction_id')} {ids}"
    return f"rows {rows.nonzero()[0][:3].tolist()}, counted from 0"


def _card_numbers(cards: pd.Series) -> np.ndarray:
    """Rows whose card id holds a card number; each distinct id is tested once."""
    distinct = pd.unique(cards.dropna())
    pans = [card for card in distinct if looks_like_pan(str(card))]
    return cards.isin(pans).to_numpy() if pans else np.zeros(len(cards), dtype=bool)


def validate_history(frame: pd.DataFrame, *, names: Mapping[str, str] | None = None) -> None:
    """Refuse what no feature can be honest about (bad amounts, duplicate ids, no time),
    and what the stream refuses (a card number as the card id, an amount over its limit):
    a model trained on payments it will never score learns nothing it can use, and a
    card number would reach the store. ``names`` maps our columns to the source's, for
    the message (see :func:`~feature_store.columns.source_column_names`)."""
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
        with np.errstate(invalid="ignore"):
            too_large = amount > MAX_AMOUNT
        if too_large.any():
            problems.append(
                f"{int(too_large.sum())} {names.get('amount', 'amount')}(s) above "
                f"{MAX_AMOUNT:,.0f}, which the stream refuses (e.g. "
                f"{where_rows(frame, too_large, names)})"
            )
    if "card_id" in frame.columns and (pans := _card_numbers(frame["card_id"])).any():
        problems.append(
            f"{int(pans.sum())} {names.get('card_id', 'card_id')}(s) holding a card number, "
            f"which the stream refuses (e.g. {where_rows(frame, pans, names)}; use the token)"
        )
    if "transaction_id" in frame.columns:
        duplicated = frame["transaction_id"].duplicated()
        if duplicated.any():
            ids = frame.loc[duplicated, "transaction_id"].drop_duplicates().head(3).tolist()
            problems.append(
                f"{int(duplicated.sum())} duplicate "
                f"{names.get('transaction_id', 'transaction_id')}(s) (e.g. {ids})"
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
            redact_pans(  # an id quoted as an example can hold a card number too
                "the history cannot be used as it is: "
                + "; ".join(problems)
                + ". Fix or drop those rows first: no honest feature or score can be made of them"
            )
        )
