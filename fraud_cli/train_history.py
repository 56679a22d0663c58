"""The history one training run reads: of an archive only the days its windows reach, a
file whole; refused, with the fix, when it is too large or holds payments not yet made."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fraud_cli.output import progress_line

if TYPE_CHECKING:  # the training stack is imported only when a command runs
    import pandas as pd

    from batch_training.pipeline import PipelineOptions
    from batch_training.reach import HistoryReach
    from batch_training.registry import ModelRegistry
    from feature_store.columns import ColumnPreset

__all__ = ["LoadedHistory", "ReadSettings", "read_for_run"]


@dataclass(frozen=True)
class ReadSettings:
    columns: ColumnPreset
    max_rows: int


def _fewer_rows(reach: HistoryReach | None) -> str:
    """How to make a run's read fit the row limit, from what set its first day."""
    more = "or raise --max-rows (FRAUD_MAX_HISTORY_ROWS) if this machine has the memory"
    if reach is None:
        return (
            "a file is read whole: train on a `fraud archive` directory, of which a run "
            f"reads only the days its windows need, or on a file of fewer days, {more}"
        )
    if reach.by_champion:
        return (
            f"{reach.set_by} set how far back it reads: fewer --train-days or --folds, or a "
            f"champion whose features reach less far back (`fraud models promote`), {more}"
        )
    return (
        f"{reach.set_by} set how far back it reads: fewer --train-days or --folds, or a "
        f"--feature-set that reaches less far back, {more}"
    )


@dataclass(frozen=True)
class LoadedHistory:
    frame: pd.DataFrame
    # the days read from an archive (None: a file, read whole) and its last payment
    since: date | None
    until: date | None
    last_event_ms: int | None
    seconds: float
    # the first day the candidate's features need (None: a file); the days read before it
    # only re-score the champion
    candidate_since: date | None = None


def _first_future_day() -> date:
    """The first UTC day whose payments a history may not hold: the day after tomorrow
    (tomorrow's allows a clock ahead across midnight), in a file as in an archive."""
    return datetime.now(UTC).date() + timedelta(days=2)


def _refuse_future_payments(history_path: Path, frame: pd.DataFrame, columns: ColumnPreset) -> None:
    """As an archive's future day: a payment dated after tomorrow (UTC) in a file puts the
    latest window after the real payments (its test window empty), and an explicit one's
    features, counts and days on payments that have not happened."""
    import pandas as pd

    from batch_training.errors import TrainingDataError
    from feature_store.columns import source_column_names
    from feature_store.schema import redact_pans
    from feature_store.validation import where_rows

    future = (frame["event_time"] >= pd.Timestamp(_first_future_day(), tz="UTC")).to_numpy()
    if future.any():
        names = source_column_names(columns)
        raise TrainingDataError(
            redact_pans(
                f"{history_path} holds {int(future.sum()):,} payment(s) dated in the future, "
                f"the latest at {frame['event_time'].max():%Y-%m-%d %H:%M} UTC (e.g. "
                f"{where_rows(frame, future, names)}); drop them or fix their times"
            )
        )


def read_for_run(
    history_path: Path, options: PipelineOptions, read: ReadSettings, registry: ModelRegistry
) -> LoadedHistory:
    """The history a run needs: of an archive, only the days its windows reach, from the
    furthest reach of the features to the test window's end (an archive grows every day)."""
    from batch_training.dataset import fold_splits
    from batch_training.errors import TrainingDataError
    from batch_training.reach import history_reach
    from feature_store import HistoryTooLargeError, read_history
    from feature_store.archive import archive_first_day, archive_last_event_ms

    last_event_ms = archive_last_event_ms(history_path)  # None unless an archive
    since = until = reach = None
    if last_event_ms is not None:
        last_day = date(1970, 1, 1) + timedelta(days=last_event_ms // 86_400_000)
        if last_day >= _first_future_day():
            # the archiver refuses future payments: a day written by other means, which
            # would put every latest window after the real payments
            raise TrainingDataError(
                f"{history_path} holds payments dated {last_day}, in the future; move "
                f"its transactions/day={last_day} directory out of the archive"
            )
        reach = history_reach(options, last_event_ms, registry)
        if options.train_start is not None:
            # refused as a file's, with the archive's days (the pipeline sees only those
            # read, from the features' look-back on), before or after them
            split = options.split_starting(options.train_start.date())
            earliest = fold_splits(split, options.folds)[-1].train_start
            first_day = archive_first_day(history_path)
            if reach.end_day > last_day + timedelta(days=1) or (
                first_day is not None and earliest < first_day
            ):
                window = split.describe()
                raise TrainingDataError(
                    f"the split (train {window['train']}, test {window['test']}"
                    f"{f', over {options.folds} folds' if options.folds > 1 else ''}) needs "
                    f"days {earliest} to {split.test_end - timedelta(days=1)}, but the "
                    f"archive holds {first_day} to {last_day}; choose another --train-start "
                    f"than {options.train_start:%Y-%m-%d}, or fewer days or --folds"
                )
        since, until = reach.first_day, min(reach.end_day, last_day + timedelta(days=1))
    days = ""
    if since is not None and until is not None:  # until is the first day not read
        last = until - timedelta(days=1)
        days = f": its days {since} .. {last} (the windows, after their features' look-back)"
    progress_line(f"reading {history_path}{days} ...")
    started = time.perf_counter()
    try:
        frame = read_history(
            history_path, columns=read.columns, since=since, until=until, max_rows=read.max_rows
        )
    except HistoryTooLargeError as exc:
        raise exc.with_fix(_fewer_rows(reach)) from None
    if frame.empty and until is not None:  # the windows lie before the archive
        raise TrainingDataError(
            f"{history_path} holds no payments from {since} before {until}, the days "
            "this run's windows need: the archive is too short for these --train-days, "
            "--delay-days, --test-days and --label-delay-days, or --train-start lies "
            "outside it"
        )
    if last_event_ms is None:
        _refuse_future_payments(history_path, frame, read.columns)
    seconds = time.perf_counter() - started
    candidate_since = None if reach is None else reach.candidate_first_day
    return LoadedHistory(frame, since, until, last_event_ms, seconds, candidate_since)
