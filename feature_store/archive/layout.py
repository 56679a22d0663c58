"""The archive's layout on disk: day directories of Parquet parts, written durably.

    transactions/day=YYYY-MM-DD/part-<uuid>.parquet   # by event_time (UTC)
    labels/day=YYYY-MM-DD/part-<uuid>.parquet         # by label_time (UTC)

A part is written under a temporary name, synced and renamed, so a reader never sees half
a file and a crash leaves at most a ``.tmp`` that no reader takes for a part.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from feature_store.durability import fsync_path, remove_abandoned
from feature_store.errors import HistoryFormatError

__all__ = [
    "SCHEMAS",
    "TEXT",
    "archive_day_rows",
    "archive_first_day",
    "archive_last_day",
    "archive_last_event_ms",
    "day_dirs",
    "durable_mkdir",
    "first_day_within",
    "held_days",
    "is_archive",
    "part_files",
    "parts_dataset",
    "read_parts",
    "remove_abandoned_parts",
    "transaction_day_dirs",
    "write_days",
]

TEXT = pa.string()
_TIME = pa.timestamp("ns", tz="UTC")
# Read with fixed types: a day whose events all lack an optional field stores it as nulls,
# and a file-inferred schema would then refuse the days that have it.
SCHEMAS = {
    "transactions": pa.schema(
        [
            ("transaction_id", TEXT),
            ("event_time", _TIME),
            ("card_id", TEXT),
            ("merchant_id", TEXT),
            ("amount", pa.float64()),
            *((code, TEXT) for code in ("currency", "mcc", "channel", "country", "device_id")),
        ]
    ),
    "labels": pa.schema(
        [
            ("transaction_id", TEXT),
            ("is_fraud", pa.bool_()),
            ("label_time", _TIME),
            ("analyst", TEXT),
        ]
    ),
}


def durable_mkdir(path: Path) -> None:
    """``path`` and its missing parents, each one's name synced into its parent: a part
    synced into a directory whose own name was lost in a power cut is lost with it."""
    if path.is_dir():
        return
    durable_mkdir(path.parent)
    path.mkdir(exist_ok=True)
    fsync_path(path.parent)


def write_days(out: Path, frame: pd.DataFrame, time_column: str) -> int:
    """``frame`` as one new file per UTC day of ``time_column`` under ``out``; the count."""
    frame = frame.assign(**{time_column: pd.to_datetime(frame[time_column], utc=True)})
    files = 0
    for day, part in frame.groupby(frame[time_column].dt.strftime("%Y-%m-%d")):
        target = out / f"day={day}"
        durable_mkdir(target)
        # write then rename: a reader never sees half a file
        final = target / f"part-{uuid.uuid4().hex}.parquet"
        temporary = final.with_suffix(".tmp")
        part.to_parquet(temporary, index=False)
        fsync_path(temporary)  # on disk before its name: no empty part after a power loss
        temporary.rename(final)
        fsync_path(target)  # and its name before the offsets it holds are committed
        files += 1
    return files


def remove_abandoned_parts(archive: Path, *, older_than_s: float = 86_400.0) -> int:
    """Remove the ``.tmp`` parts a writer killed mid-write left (a part takes seconds to
    write; readers never take one for a part); returns how many."""
    parts = (
        part
        for kind in SCHEMAS
        for day in day_dirs(archive / kind)
        for part in day.glob("part-*.tmp")
    )
    return remove_abandoned(parts, older_than_s=older_than_s)


def is_archive(path: Path) -> bool:
    return path.is_dir() and (path / "transactions").is_dir()


def archive_last_day(path: Path) -> date | None:
    """The latest day the archive holds transactions of (None when it holds none, or
    ``path`` is not an archive)."""
    days = held_days(path)
    return days[-1] if days else None


def archive_first_day(path: Path) -> date | None:
    """The earliest day the archive holds transactions of (None as for the last)."""
    days = held_days(path)
    return days[0] if days else None


def held_days(path: Path) -> list[date]:
    # a day counts once a whole part is in it (a crash can leave only a .tmp behind)
    return [
        date.fromisoformat(p.name.removeprefix("day="))
        for p in day_dirs(path / "transactions")
        if any(p.glob("*.parquet"))
    ]


def day_dirs(kind_dir: Path) -> list[Path]:
    """The ``day=YYYY-MM-DD`` directories, in date order; others (``day=…​.bak`` copied by
    hand) are not days of the archive."""
    if not kind_dir.is_dir():
        return []
    return sorted(p for p in kind_dir.iterdir() if p.is_dir() and _is_day_name(p.name))


_DAY_NAME = re.compile(r"day=\d{4}-\d\d-\d\d")


def _is_day_name(name: str) -> bool:
    if not _DAY_NAME.fullmatch(name):  # fromisoformat alone takes week dates too
        return False
    try:
        date.fromisoformat(name.removeprefix("day="))
    except ValueError:  # day=2026-02-30
        return False
    return True


def part_files(days: list[Path]) -> list[str]:
    # whole files only: a part still being written ends in .tmp until it is renamed
    return [str(f) for day in days for f in sorted(day.glob("*.parquet"))]


def parts_dataset(kind: str, parts: list[str]) -> ds.Dataset:
    return ds.dataset(parts, schema=SCHEMAS[kind], format="parquet")


def read_parts(kind: str, parts: list[str], columns: list[str], *, what: str, fix: str) -> pa.Table:
    """``columns`` of ``parts``; a part that cannot be read (truncated by a crash, say) is
    :class:`HistoryFormatError` saying ``what`` it was and the ``fix``."""
    try:
        return parts_dataset(kind, parts).to_table(columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise HistoryFormatError(
            f"{what} cannot be read ({type(exc).__name__}: {first_line}); {fix}"
        ) from exc


def transaction_day_dirs(path: Path, since: date | None, until: date | None = None) -> list[Path]:
    days = day_dirs(path / "transactions")
    if since is not None:
        days = [d for d in days if d.name >= f"day={since.isoformat()}"]
    if until is not None:
        days = [d for d in days if d.name < f"day={until.isoformat()}"]
    return days


def archive_day_rows(path: Path, *, since: date | None = None) -> dict[date, int]:
    """Transactions archived per UTC day (repeats included), from ``since`` on, from the
    Parquet footers: cheap on an archive of any size."""
    counts = {}
    for day in transaction_day_dirs(path, since):
        parts = part_files([day])
        if parts:  # a day holding only a half-written .tmp part holds nothing yet
            counts[date.fromisoformat(day.name.removeprefix("day="))] = parts_dataset(
                "transactions", parts
            ).count_rows()
    return counts


def first_day_within(day_rows: Mapping[date, int], since: date, max_rows: int) -> date | None:
    """The earliest day from ``since`` on whose transactions, with every later day's, are
    at most ``max_rows`` (``since`` itself when all fit); None when not even the last
    day's do."""
    first, total = None, 0
    for day in sorted((d for d in day_rows if d >= since), reverse=True):
        total += day_rows[day]
        if total > max_rows:
            return first
        first = day
    return since


def archive_last_event_ms(path: Path) -> int | None:
    """The latest event time the archive holds, in whole epoch milliseconds (cut down, as
    the offline engine's clock is; None when it holds none): read from its last day's
    ``event_time`` column alone."""
    # latest day first; a day whose parts hold no rows (an archiver that wrote an empty
    # one) does not end the archive
    for day in reversed(day_dirs(path / "transactions")):
        parts = part_files([day])
        if not parts:
            continue
        times = read_parts(
            "transactions",
            parts,
            ["event_time"],
            what=f"archive {path}: {day.name}",
            fix=f"move the damaged part out of {day} and train again",
        )
        last_ns = pc.max(times["event_time"].cast(pa.int64())).as_py()  # _TIME: ns
        if last_ns is not None:
            return int(last_ns) // 1_000_000
    return None
