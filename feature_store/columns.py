"""Column presets: other people's history layouts mapped onto ours.

``handbook`` reads the fraud-detection handbook's raw columns (TRANSACTION_ID,
TX_DATETIME, CUSTOMER_ID as the card, TERMINAL_ID as the merchant, TX_AMOUNT, TX_FRAUD;
TX_FRAUD_SCENARIO, when present, named as the handbook describes its scenarios).
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import pandas as pd

from feature_store.errors import HistoryColumnsError

__all__ = ["COLUMN_PRESETS", "ColumnPreset", "apply_column_preset", "source_column_names"]

ColumnPreset = Literal["native", "handbook"]
COLUMN_PRESETS: Final = ("native", "handbook")

_HANDBOOK: Final = {
    "TRANSACTION_ID": "transaction_id",
    "TX_DATETIME": "event_time",
    "CUSTOMER_ID": "card_id",
    "TERMINAL_ID": "merchant_id",
    "TX_AMOUNT": "amount",
    "TX_FRAUD": "is_fraud",
}

# the handbook's scenario codes, as its simulator chapter describes them
_HANDBOOK_SCENARIOS: Final = {
    0: "none",
    1: "amount_over_220",
    2: "compromised_terminal",
    3: "compromised_customer",
}


def source_column_names(preset: ColumnPreset) -> dict[str, str]:
    """Our column names mapped to the names the source file uses, so an error about a
    column names the one its user can find (TX_FRAUD, not is_fraud); a name not in the
    map is the same in both."""
    return {ours: theirs for theirs, ours in _HANDBOOK.items()} if preset == "handbook" else {}


def _handbook_tie_break(frame: pd.DataFrame) -> np.ndarray:
    """Order of same-time transactions of one customer as the handbook's code sorts them.

    The handbook sorts each customer's rows with ``sort_values("TX_DATETIME")``, whose
    default quicksort is not stable, so a customer's simultaneous transactions come out in
    no particular order; its window counts depend on that order (20 of 1.75M rows). We
    reproduce it exactly, per customer, instead of guessing.
    """
    times = frame["TX_DATETIME"].to_numpy()
    codes, _ = pd.factorize(frame["CUSTOMER_ID"])  # -1: no customer, no group (as groupby)
    tie_break = np.zeros(len(frame), dtype=np.int64)
    if times.dtype.kind not in "iufmM" or pd.isna(times).any():
        # unusual or missing times: the handbook's own sort throughout
        for positions in frame.groupby("CUSTOMER_ID", sort=False).indices.values():
            _quicksort_ranks(times, np.asarray(positions), tie_break)
        return tie_break
    # With distinct times a customer's order is just its time order, whatever the sort:
    # rank every row within its customer at once (stable by position)...
    order = np.lexsort((times, codes))
    sorted_codes, sorted_times = codes[order], times[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    tie_break[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    # ...and redo, with the handbook's unstable sort, the few customers with simultaneous ones
    tied = (sorted_codes[1:] == sorted_codes[:-1]) & (sorted_times[1:] == sorted_times[:-1])
    for block in np.unique(np.searchsorted(starts, np.flatnonzero(tied), side="right") - 1):
        _quicksort_ranks(
            times, np.sort(order[starts[block] : starts[block] + sizes[block]]), tie_break
        )
    tie_break[codes < 0] = 0
    return tie_break


def _quicksort_ranks(times: np.ndarray, positions: np.ndarray, tie_break: np.ndarray) -> None:
    """Ranks of one customer's rows (``positions``, ascending) in ``sort_values`` order."""
    order = pd.Series(times[positions]).sort_values().index.to_numpy()
    tie_break[positions[order]] = np.arange(len(positions))


def apply_column_preset(frame: pd.DataFrame, preset: ColumnPreset) -> pd.DataFrame:
    """The frame in our column names; ``native`` returns it unchanged. Times read as
    text (a CSV's) stay text: :func:`read_history` parses them, naming a bad value."""
    if preset == "native":
        return frame
    if preset != "handbook":
        raise HistoryColumnsError(f"unknown column preset {preset!r}; known: {COLUMN_PRESETS}")
    missing = sorted(set(_HANDBOOK) - set(frame.columns))
    if missing:
        ours = {"event_time", "card_id", "merchant_id", "amount"} <= set(frame.columns)
        raise HistoryColumnsError(
            f"--columns handbook needs the handbook's raw columns; missing {missing} "
            f"(present: {sorted(frame.columns)})"
            + ("; this history has this product's own columns: drop --columns" if ours else "")
        )
    out = frame[list(_HANDBOOK)].rename(columns=_HANDBOOK)
    times = out["event_time"]
    # text is parsed by read_history, which names a value that is not a time
    if not (pd.api.types.is_object_dtype(times) or pd.api.types.is_string_dtype(times)):
        out["event_time"] = pd.to_datetime(times, utc=True)
    out["tie_break"] = _handbook_tie_break(frame)
    if "TX_FRAUD_SCENARIO" in frame.columns:
        codes = frame["TX_FRAUD_SCENARIO"]
        # a code the handbook does not define keeps its number, as text; a missing one
        # reads "unknown", as the report names frauds without a scenario
        as_text = codes.astype(str).where(codes.notna(), "unknown")
        out["fraud_scenario"] = codes.map(_HANDBOOK_SCENARIOS).fillna(as_text).to_numpy()
    return out
