"""Reading a transaction history into the frame both engines expect."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from feature_store.archive.layout import is_archive
from feature_store.archive.reader import read_archive
from feature_store.columns import ColumnPreset, apply_column_preset, source_column_names
from feature_store.errors import HistoryColumnsError, HistoryFormatError, HistoryTooLargeError
from feature_store.schema import CODE_FIELDS, redact_pans
from feature_store.validation import (
    card_number_rows,
    label_numbers,
    validate_history,
    where_rows,
)

__all__ = ["present_columns", "read_history", "validate_history"]  # re-exported

log = logging.getLogger(__name__)


def read_history(
    path: Path,
    *,
    columns: ColumnPreset = "native",
    since: date | None = None,
    until: date | None = None,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """A Parquet file, a directory of Parquet files (e.g. partitioned by day), a CSV, or an
    archive directory written by ``fraud archive``; of an archive, with ``since`` and
    ``until``, only the transactions of the UTC days from ``since`` and before ``until``
    (other sources are read whole).

    With ``max_rows``, a history holding more rows is refused before it is loaded
    (:class:`HistoryTooLargeError`): the features and the model need a few hundred bytes
    per row, so an unbounded read ends in the kernel's out-of-memory kill, which says why
    to no one.
    """
    if not path.exists():
        raise FileNotFoundError(
            f"history {str(path)!r} does not exist; `fraud archive` writes one from the "
            "stream's topic, `fraud simulate history` a simulated one"
        )
    if path.is_dir() and not any(path.iterdir()):
        raise HistoryFormatError(
            f"history {str(path)!r} is an empty directory: nothing archived yet (is "
            "`fraud archive` running?); or give a Parquet file, a directory of them, or a CSV"
        )
    try:
        frame = _read_frame(path, since, until, max_rows)
    # not the Arrow errors of a readable file too large for memory: they say so themselves;
    # an OSError without an errno is a page damaged inside a file ("Corrupt snappy
    # compressed data"), one with an errno (permissions, a vanished file) says what it is
    except (
        pa.ArrowInvalid,
        pa.ArrowNotImplementedError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
        UnicodeDecodeError,
        OSError,
    ) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise HistoryFormatError(
            f"history {str(path)!r} cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); {_fix_for_unreadable(path, exc)}"
        ) from exc
    if len(frame.columns) == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
        raise HistoryColumnsError(
            f"history {str(path)!r} reads as one column ({str(frame.columns[0])[:80]!r}): "
            "write it separated by commas"
        )
    frame = apply_column_preset(frame, columns)
    names = source_column_names(columns)
    if "event_time" not in frame.columns:
        raise HistoryColumnsError(
            f"history {str(path)!r} has no event_time column; columns: {sorted(frame.columns)}"
            " (for the handbook's raw file use --columns handbook)"
        )
    for column in ("event_time", "label_time"):
        if column in frame.columns:
            frame[column] = _parse_times(frame, column, path, names)
    # first: the stream never took them, so neither do the history's checks (a payment
    # resent with the card's token under the same transaction_id is no duplicate)
    if "card_id" in frame.columns and not is_archive(path):  # the archiver refused them
        frame = _without_card_numbers(frame, path, names)
    validate_history(frame, names=names)
    if "is_fraud" in frame.columns and not pd.api.types.is_numeric_dtype(frame["is_fraud"]):
        frame["is_fraud"] = label_numbers(frame["is_fraud"]).astype(np.int64)  # "0", "true"
    return frame


def _without_card_numbers(
    frame: pd.DataFrame, path: Path, names: Mapping[str, str]
) -> pd.DataFrame:
    """The payments whose card id is no card number: the stream sends the others to its
    dead letters unscored, so a model and the online store leave them out too (and no
    card number reaches a Redis key)."""
    pans = card_number_rows(frame["card_id"])
    if not pans.any():
        return frame
    card = names.get("card_id", "card_id")
    log.warning(
        "%s",
        redact_pans(
            f"history {str(path)!r}: {int(pans.sum()):,} payment(s) whose {card} holds a "
            f"card number left out, as the stream leaves them out (e.g. "
            f"{where_rows(frame, pans, names)}); give the card's token as {card} to keep them"
        ),
    )
    return frame.loc[~pans].reset_index(drop=True)


def _first_unreadable_parquet(path: Path) -> Path | None:
    """The first Parquet file under ``path`` (or ``path`` itself) that cannot be read
    whole; only on the way to an error, so reading every file again is affordable."""
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    for file in files:
        try:
            pq.read_table(file)
        except (pa.ArrowException, OSError):
            return file
    return None


def _fix_for_unreadable(path: Path, exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "save the file as UTF-8 text (e.g. CSV UTF-8)"
    if path.is_dir() or path.suffix.lower() == ".parquet":
        # the error does not always name the file: of an archive's hundreds of parts
        damaged = _first_unreadable_parquet(path)
        if damaged is not None and damaged != path:
            where = "the archive" if is_archive(path) else "the directory"
            return f"{damaged} is damaged: move it out of {where} (or restore it from a backup)"
        if damaged == path:
            return "the file is damaged: restore it from a backup or write it again"
    return (
        "give a Parquet file, a directory of Parquet files, a .csv file or a `fraud archive` "
        "directory"
    )


def present_columns(frame: pd.DataFrame, rows: np.ndarray | None = None) -> frozenset[str]:
    """The columns that hold a value (in ``rows``, a mask, if given): a field no payment
    carries (the handbook's channel, which an archive stores as nulls) feeds no feature;
    otherwise a constant one."""
    if rows is None:
        return frozenset(c for c in frame.columns if frame[c].notna().any())
    return frozenset(c for c in frame.columns if frame[c].notna().to_numpy()[rows].any())


_TEXT_COLUMNS = ("transaction_id", "card_id", "merchant_id", *CODE_FIELDS)
_NO_TIME = ("", "NaT", "nat", "None", "nan", "NaN", "null", "NULL")


def _parse_times(
    frame: pd.DataFrame, column: str, path: Path, names: Mapping[str, str]
) -> pd.Series:
    """``frame[column]`` as UTC timestamps; text (a CSV's) as ISO 8601 in any of its
    spellings, mixed too (pandas otherwise takes the first value's spelling for all of
    them), else as pandas reads a single value."""
    values = frame[column]
    numbers = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numbers and values.notna().any():  # an empty CSV column reads as float NaN: no time
        # pandas would take them as nanoseconds: epoch milliseconds became 1970
        raise HistoryColumnsError(
            f"history {str(path)!r}: {names.get(column, column)} holds numbers (e.g. "
            f"{values.dropna().head(2).tolist()}), not times; write them as ISO 8601 text "
            "(2026-03-01T12:00:00Z) or a timestamp column (e.g. epoch milliseconds: "
            "pd.to_datetime(values, unit='ms', utc=True))"
        )
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return pd.to_datetime(values, utc=True)
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    # what writers put for "no time" (str() of NaT or None, an empty cell)
    missing = values.isna() | values.astype("string").str.strip().isin(_NO_TIME).fillna(True)
    retry = parsed.isna() & ~missing
    if retry.any():  # other spellings pandas reads value by value ("... UTC", "03/01/2026")
        again = pd.to_datetime(values[retry], utc=True, format="mixed", errors="coerce")
        parsed = parsed.where(~retry, again.reindex(parsed.index))
    bad = parsed.isna() & ~missing
    if bad.any():
        raise HistoryColumnsError(
            f"history {str(path)!r}: {int(bad.sum())} {names.get(column, column)} value(s) "
            f"are not ISO 8601 times (e.g. {values[bad].head(3).tolist()}, "
            f"{where_rows(frame, bad.to_numpy(), names)}); write them like 2026-03-01T12:00:00Z"
        )
    return parsed


def _read_frame(
    path: Path, since: date | None, until: date | None, max_rows: int | None
) -> pd.DataFrame:
    if is_archive(path):  # written by `fraud archive`: labels joined in
        return read_archive(path, since=since, until=until, max_rows=max_rows)
    if path.suffix.lower() == ".csv":
        # one type per column (no DtypeWarning); ids and codes as text, as events carry
        # them (00042 is not 42)
        frame = pd.read_csv(path, low_memory=False, dtype=dict.fromkeys(_TEXT_COLUMNS, str))
        if max_rows is not None and len(frame) > max_rows:  # a CSV is counted once read
            raise HistoryTooLargeError(path, len(frame), max_rows, None)
        return frame
    if max_rows is not None and (rows := ds.dataset(str(path)).count_rows()) > max_rows:
        raise HistoryTooLargeError(path, rows, max_rows, None)
    return pd.read_parquet(path)
