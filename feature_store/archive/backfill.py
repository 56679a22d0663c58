"""A labelled history written into an archive: a new one seeded, or an existing one's
missing payments and verdicts added (the months before the archiver started, say)."""

from __future__ import annotations

import errno
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from feature_store.archive.layout import (
    SCHEMAS,
    TEXT,
    day_dirs,
    durable_mkdir,
    held_days,
    is_archive,
    part_files,
    read_parts,
    write_days,
)
from feature_store.durability import fsync_path, remove_abandoned
from feature_store.errors import ArchiveBusyError, HistoryColumnsError
from feature_store.labels import HISTORY_ANALYSTS, LabelEvent
from feature_store.locking import exclusive, lock_holder
from feature_store.offline import DEFAULT_LABEL_DELAY_S
from feature_store.schema import (
    CODE_FIELDS,
    MAX_AMOUNT,
    MAX_CODE_LENGTH,
    MAX_ID_LENGTH,
    Transaction,
    redact_pans,
)
from feature_store.validation import (
    card_number_rows,
    ids_as_text,
    label_numbers,
    validate_history,
    where_rows,
)

__all__ = ["Backfill", "backfill_archive", "refuse_unusable_backfill_target", "seed_archive"]


# the analyst of the verdicts a seed and a backfill write, which no account may take
SEEDED, BACKFILLED = HISTORY_ANALYSTS


def _archive_rows(
    history: pd.DataFrame, label_delay_s: int, analyst: str, now: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A labelled history as the archive's transactions and labels: the fields the
    stream's events have (ids as text, as events carry them), and each fraud a label at
    its ``label_time`` (else ``label_delay_s`` after its payment), and no later than
    ``now``: the history says it is known."""
    missing = {"transaction_id", "event_time", "card_id", "merchant_id", "amount", "is_fraud"}
    missing -= set(history.columns)
    if missing:
        raise HistoryColumnsError(
            f"a history for the archive needs {' and '.join(sorted(missing))}; it has "
            f"{sorted(history.columns)}"
        )
    validate_history(history)  # what the archiver would not have written either
    fields = list(Transaction.__struct_fields__)
    transactions = history.reindex(columns=fields)
    for absent in set(fields) - set(history.columns):
        transactions[absent] = None  # nulls, as the archiver writes a field events lack
    for name in SCHEMAS["transactions"].names:
        column = transactions[name]
        if SCHEMAS["transactions"].field(name).type == TEXT and not (
            pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)
        ):  # the handbook's numbered customers and terminals, as the stream's text ids
            transactions[name] = ids_as_text(column)
    transactions["event_time"] = pd.to_datetime(transactions["event_time"], utc=True)
    # validated as numbers above, but a Parquet column of text stays text until here
    transactions["amount"] = pd.to_numeric(transactions["amount"]).astype("float64")
    _refuse_what_the_stream_refuses(transactions)
    future = (transactions["event_time"] > now).to_numpy()
    if future.any():  # every training run on the archive would stop on them
        raise HistoryColumnsError(
            f"{int(future.sum())} payment(s) are dated after now ({now:%Y-%m-%dT%H:%M:%SZ}; "
            f"e.g. {where_rows(transactions, future, {})}); an archive holds payments that "
            "happened: drop them or fix their times"
        )
    fraud = (label_numbers(history["is_fraud"]) == 1).to_numpy()  # "0" is not a fraud
    # a fraud without a label time is known the label delay after it, as the features and
    # the split take it in the history the archive is written from
    label_time = transactions["event_time"][fraud] + pd.Timedelta(seconds=label_delay_s)
    if "label_time" in history:
        label_time = pd.to_datetime(history["label_time"][fraud], utc=True).fillna(label_time)
    # known by now, not later (a simulated history's lie ahead): an analyst's clearing
    # after this backfill is then the latest verdict
    label_time = label_time.where(label_time <= now, now)
    labels = pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"].to_numpy()[fraud],
            "is_fraud": True,
            "label_time": label_time.to_numpy(),
            "analyst": analyst,
        },
        columns=list(LabelEvent.__struct_fields__),
    )
    return transactions, labels


def _refuse_what_the_stream_refuses(transactions: pd.DataFrame) -> None:
    """The transaction contract's rules on ids, card numbers and amounts: an archive holds
    what the stream would have taken (a missing id repeated its verdict at every backfill,
    and a card number reached the archive's Parquet)."""
    problems = []
    for column in ("transaction_id", "card_id", "merchant_id"):
        length = transactions[column].astype("string").str.len()
        bad = (length.isna() | (length < 1) | (length > MAX_ID_LENGTH)).to_numpy()
        if bad.any():  # rows by number where the id itself is what is wrong
            where = (
                f"rows {bad.nonzero()[0][:3].tolist()}, counted from 0"
                if column == "transaction_id"
                else where_rows(transactions, bad, {})
            )
            problems.append(
                f"{int(bad.sum())} {column}(s) missing, empty or over {MAX_ID_LENGTH} characters "
                f"(e.g. {where})"
            )
    for column in CODE_FIELDS:  # optional: missing is fine, over-long is not
        length = transactions[column].astype("string").str.len()
        bad = (length > MAX_CODE_LENGTH).fillna(False).to_numpy(bool)
        if bad.any():
            problems.append(
                f"{int(bad.sum())} {column}(s) over {MAX_CODE_LENGTH} characters "
                f"(e.g. {where_rows(transactions, bad, {})})"
            )
    if (bad := card_number_rows(transactions["card_id"])).any():
        problems.append(
            f"{int(bad.sum())} card_id(s) holding a card number (e.g. "
            f"{where_rows(transactions, bad, {})}; the stream refuses them: use the token)"
        )
    too_large = (transactions["amount"] > MAX_AMOUNT).to_numpy()
    if too_large.any():
        problems.append(
            f"{int(too_large.sum())} amount(s) above {MAX_AMOUNT:,.0f} (e.g. "
            f"{where_rows(transactions, too_large, {})})"
        )
    if problems:
        raise HistoryColumnsError(
            redact_pans(
                "the history holds payments the stream would refuse: "
                + "; ".join(problems)
                + ". Fix or drop those rows first"
            )
        )


def _now(now: pd.Timestamp | None) -> pd.Timestamp:
    if now is None:
        return pd.Timestamp.now(tz="UTC")
    return now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")


def seed_archive(
    history: pd.DataFrame,
    out: Path,
    *,
    label_delay_s: int = DEFAULT_LABEL_DELAY_S,
    now: pd.Timestamp | None = None,
) -> tuple[int, int]:
    """Start an archive with a labelled history, so retraining on the archive reaches back
    past what the stream has seen; returns (transactions, labels) written.

    The archive is written beside ``out`` and renamed into place, so a seed that fails
    leaves no half archive. Raises :class:`HistoryColumnsError` when the history has no
    ``is_fraud``, rows the archiver would refuse, or payments after ``now`` (every
    training run would stop on them), and ``FileExistsError`` when ``out`` exists and is
    not empty: a second seed would duplicate days (:func:`backfill_archive` adds what an
    archive lacks).
    """
    now = _now(now)
    transactions, labels = _archive_rows(history, label_delay_s, SEEDED, now)
    _seed(transactions, labels, out)
    return len(transactions), len(labels)


def _seed(transactions: pd.DataFrame, labels: pd.DataFrame, out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; seed a new archive directory")
    # a seed killed an hour ago
    remove_abandoned(out.parent.glob(f".{out.name}.seeding-*"), older_than_s=3600)
    staging = out.with_name(f".{out.name}.seeding-{uuid.uuid4().hex}")
    durable_mkdir(staging / "transactions")  # an archive, even of no payments
    try:
        write_days(staging / "transactions", transactions, "event_time")
        if len(labels):
            write_days(staging / "labels", labels, "label_time")
        try:
            staging.rename(out)  # onto nothing or an empty directory
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise ArchiveBusyError(
                f"{out} was started by another backfill or seed meanwhile; run this one "
                "again: it adds only what is still missing"
            ) from None
        fsync_path(out.parent)  # the archive's name, once all it holds is on disk
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclass(frozen=True)
class Backfill:
    """What :func:`backfill_archive` did: the UTC days it added whole, the days the
    archive held in part that it completed, the days the archive held whole already, the
    days it left because the archiver is writing them (from today on), and the payments
    and fraud verdicts written."""

    added: tuple[date, ...]
    completed: tuple[date, ...]
    held: tuple[date, ...]
    left: tuple[date, ...]
    transactions: int
    labels: int


def _days(values: Iterable[date]) -> tuple[date, ...]:
    return tuple(sorted(set(values)))


def backfill_archive(
    history: pd.DataFrame,
    out: Path,
    *,
    label_delay_s: int = DEFAULT_LABEL_DELAY_S,
    now: pd.Timestamp | None = None,
) -> Backfill:
    """Add to the archive at ``out`` (started if there is none) what a labelled history
    holds and it lacks: each payment whose transaction id it does not hold, and each fraud
    verdict on a payment it holds no verdict on, e.g. the months before the archiver
    started. Ids are the join: the history must use the stream's.

    A day the archive holds in part (the archiver's first, whose partitions start at
    different times) is completed by id, whatever the times; one from ``now``'s (UTC) on
    is left, as the archiver is writing it. Payments after ``now`` are refused. A verdict
    the archive holds (an analyst's, from the stream) is never overridden by the
    history's. A backfill that stops half way is finished by running it again (what is
    still missing is added); two at once on one archive are refused
    (:class:`ArchiveBusyError`).
    """
    now = _now(now)
    refuse_unusable_backfill_target(out)
    transactions, labels = _archive_rows(history, label_delay_s, BACKFILLED, now)
    day = transactions["event_time"].dt.date
    if not _started(out):
        _seed(transactions, labels, out)
        return Backfill(_days(day), (), (), (), len(transactions), len(labels))
    lock = out / ".backfill.lock"
    with exclusive(lock) as mine:
        if not mine:
            raise ArchiveBusyError(
                f"{lock_holder(lock, 'another backfill')} is writing into {out}; wait for "
                "it to finish, then run this one again (it adds only what is still missing)"
            )
        held = set(held_days(out))
        # a day from today on that the archive holds is being written by the archiver
        writing = (day.isin(held) & (day >= now.date())).to_numpy()
        ended = ~writing
        # every day's ids: a payment may be archived on another day than the history's
        archived = _archived(out, "transactions")
        _refuse_other_ids(transactions[ended], archived, out)
        new = ended & ~_among(transactions["transaction_id"], archived["transaction_id"])
        judged = _archived(out, "labels")["transaction_id"]
        new_labels = labels[
            _among(labels["transaction_id"], transactions["transaction_id"][ended])
            & ~_among(labels["transaction_id"], judged)
        ]
        if len(new_labels):
            write_days(out / "labels", new_labels, "label_time")
        if new.any():
            write_days(out / "transactions", transactions[new], "event_time")
    touched = set(day[new])
    return Backfill(
        added=_days(touched - held),
        completed=_days(touched & held),
        held=_days((set(day[ended]) & held) - touched),
        left=_days(day[writing]),
        transactions=int(new.sum()),
        labels=len(new_labels),
    )


def _among(values: pd.Series, pool: pd.Series) -> np.ndarray:
    """Which of ``values`` are in ``pool``, as text: pandas' Arrow-backed strings test
    membership a value at a time (a no-op backfill of the handbook took 36 s, 9 s so)."""
    found = values.astype(object).isin(pd.Index(pool.astype(object).unique()))
    return found.to_numpy(dtype=bool)


def _started(out: Path) -> bool:
    return is_archive(out) or (out / "labels").is_dir()  # labels only: an archiver's


def refuse_unusable_backfill_target(out: Path) -> None:
    """``out`` is an archive, a new directory or an empty one (checked before the history
    is read: a long read, then the refusal)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; give an archive directory, or a new one")
    if not _started(out) and out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} holds files but is not an archive (no transactions/ or labels/); give "
            "an archive directory, or a new one"
        )


def _archived(out: Path, kind: str) -> pd.DataFrame:
    """The transaction ids (and for payments, times) the archive's ``kind`` holds."""
    columns = ["transaction_id", "event_time"] if kind == "transactions" else ["transaction_id"]
    files = part_files(day_dirs(out / kind))
    if not files:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    table = read_parts(
        kind,
        files,
        columns,
        what=f"archive {out}: its {kind}",
        fix="move the damaged part out of its day directory and backfill again",
    )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _refuse_other_ids(history: pd.DataFrame, archived: pd.DataFrame, out: Path) -> None:
    """Ids are the join, so a history under other ids (a warehouse's numbers beside the
    stream's) would add every payment of a held day again. Said where both hold the same
    stretch of a day and share no id in it; a history that ends as the archiver started
    shares no stretch."""
    if history.empty:
        return
    times = history["event_time"]
    archived = archived[archived["event_time"].between(times.min(), times.max())]
    if archived.empty:
        return
    archived_day = archived["event_time"].dt.floor("D")
    span = archived.groupby(archived_day)["event_time"].agg(["min", "max"])
    day = times.dt.floor("D")
    inside = history[(times >= day.map(span["min"])) & (times <= day.map(span["max"]))]
    if inside.empty:
        return
    matched = pd.Series(
        _among(inside["transaction_id"], archived["transaction_id"]), index=inside.index
    )
    inside_day = inside["event_time"].dt.floor("D")
    shared = matched.groupby(inside_day).any()
    if not shared.all():
        other = shared.index[~shared.to_numpy()][0]
        ours = redact_pans(str(inside.loc[inside_day == other, "transaction_id"].iloc[0]))
        theirs = redact_pans(str(archived.loc[archived_day == other, "transaction_id"].iloc[0]))
        other = other.date()
        raise HistoryColumnsError(
            f"on {other} the history's payments share no transaction_id with the archive's "
            f"over the same hours (e.g. {ours!r} against {theirs!r}): backfill adds what "
            "the archive lacks by id, and would write those payments twice; give the "
            "history the stream's transaction ids"
        )
