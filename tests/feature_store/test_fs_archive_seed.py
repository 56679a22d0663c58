"""Seeding an archive with a labelled history: training on it sees what the history says."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from batch_training.pipeline import PipelineOptions, run_training
from batch_training.registry import ModelRegistry
from feature_store import CORE_FEATURE_SET, read_history
from feature_store.archive import (
    archive_last_day,
    archive_last_event_ms,
    read_archive,
    seed_archive,
)
from feature_store.archive.layout import remove_abandoned_parts
from feature_store.offline import epoch_ms, offline_feature_matrix
from fraud_cli.main import cli
from simulator.config import SimulationConfig
from simulator.generator import TrafficGenerator


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    generator = TrafficGenerator(SimulationConfig(cards=200, merchants=20, seed=3))
    return generator.history(start=datetime(2026, 10, 1, tzinfo=UTC), days=20)


def test_features_from_a_seeded_archive_are_the_historys(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """Labels keep the time they became known, so label-delayed features agree."""
    assert history["is_fraud"].sum() > 0
    written, labels = seed_archive(history, tmp_path / "archive")
    assert (written, labels) == (len(history), int(history["is_fraud"].sum()))
    archived = read_archive(tmp_path / "archive")
    original = history.sort_values("event_time", kind="stable").reset_index(drop=True)
    assert archived["transaction_id"].tolist() == original["transaction_id"].tolist()
    np.testing.assert_array_equal(archived["is_fraud"], original["is_fraud"])
    fraud = original["is_fraud"].to_numpy(dtype=bool)
    assert (archived["label_time"][fraud] == original["label_time"][fraud]).all()
    np.testing.assert_array_equal(
        offline_feature_matrix(CORE_FEATURE_SET, archived),
        offline_feature_matrix(CORE_FEATURE_SET, original),
    )


def test_a_fraud_without_a_label_time_is_kept_and_an_archive_is_seeded_once(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    unlabelled = history.copy()
    unlabelled["label_time"] = pd.NaT
    seed_archive(unlabelled, tmp_path / "archive")
    archived = read_archive(tmp_path / "archive")
    assert archived["is_fraud"].sum() == history["is_fraud"].sum()  # none dropped
    # known the label delay after it, as the history it was seeded from has it: the
    # features of the archive are the file's
    fraud = archived["is_fraud"] == 1
    later = archived.loc[fraud, "event_time"] + pd.Timedelta(days=7)
    assert (archived.loc[fraud, "label_time"] == later).all()
    np.testing.assert_array_equal(
        offline_feature_matrix(CORE_FEATURE_SET, archived),
        offline_feature_matrix(CORE_FEATURE_SET, unlabelled),
    )
    with pytest.raises(FileExistsError, match="is not empty"):
        seed_archive(history, tmp_path / "archive")
    # nothing is left beside it: the seed was renamed into place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive"]


@pytest.fixture(scope="module")
def long_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """130 days (05-01 .. 09-07) as one Parquet file and as a seeded archive."""
    generator = TrafficGenerator(SimulationConfig(cards=600, merchants=60, seed=11))
    long_history = generator.history(start=datetime(2026, 5, 1, tzinfo=UTC), days=130)
    where = tmp_path_factory.mktemp("long")
    long_history.to_parquet(where / "history.parquet")
    seed_archive(long_history, where / "archive")
    return where / "history.parquet", where / "archive"


_SPLIT = ("--train-days", "7", "--delay-days", "2", "--test-days", "7", "--json")


def _train(history: Path, registry: Path, *extra: str) -> tuple[dict[str, Any], str]:
    where = ["--history", str(history), "--registry", str(registry)]
    result = CliRunner().invoke(cli, ["train", *where, *_SPLIT, *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1]), result.output


def test_training_on_an_archive_reads_only_the_days_its_windows_reach(
    long_archive: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run on a long archive reads from its earliest training day less the furthest
    reach of its own features and the champion's, and trains exactly as on the whole
    history."""
    whole, archive = long_archive
    from_whole, _ = _train(whole, tmp_path / "registry-whole")
    from_archive, output = _train(archive, tmp_path / "registry")
    # the test window (08-24 .. 08-30) ends 7 label days before 09-07: training starts
    # 08-15; core's features reach back 37 days, and a day's margin; nothing after the test
    # window is read
    assert "archive: its days 2026-07-08 .. 2026-08-30 (the windows" in output
    for key in ("metrics", "thresholds", "train_rows", "test_rows", "test_frauds"):
        assert from_archive[key] == from_whole[key], key
    # the version and its report say how much of the history was read
    for run, registry_dir, read in (
        (from_whole, "registry-whole", "all of it"),
        (from_archive, "registry", "its days 2026-07-08 .. 2026-08-30"),
    ):
        extra = ModelRegistry(tmp_path / registry_dir).metadata(run["model_version"]).extra
        page = Path(run["report"]).read_text()
        assert f"Read {extra['history_rows']:,} payments of the history: {read}." in page
    days = pd.read_parquet(whole)["event_time"].dt.strftime("%Y-%m-%d")
    assert extra["history_rows"] == days.between("2026-07-08", "2026-08-30").sum()
    # an `extended` champion (90 days of reach) is re-scored on the test window: a `core`
    # candidate reads as far back as the champion's features need from its start
    extended, _ = _train(archive, tmp_path / "registry", "--feature-set", "extended")
    promoted = CliRunner().invoke(
        cli,
        ["models", "--registry", str(tmp_path / "registry"), "promote",
         str(extended["model_version"]), "--force"],
    )  # fmt: skip
    assert promoted.exit_code == 0, promoted.output
    over_extended, output = _train(archive, tmp_path / "registry")
    assert "archive: its days 2026-05-25 .. 2026-08-30 (the windows" in output  # 08-24 - 91
    assert over_extended["metrics"] == from_whole["metrics"]
    # the champion scores on its own test window as it did when it was trained
    registry = ModelRegistry(tmp_path / "registry")
    judged = registry.metadata(over_extended["model_version"]).extra["gate"]["champion_metrics"]
    own = registry.metadata(extended["model_version"]).metrics
    assert judged["average_precision"] == own["average_precision"]


def test_an_explicit_window_on_an_archive_reads_to_its_test_end_and_trains_as_on_the_file(
    long_archive: tuple[Path, Path], tmp_path: Path
) -> None:
    whole, archive = long_archive
    window = ("--train-start", "2026-07-01", "--folds", "2")
    from_whole, _ = _train(whole, tmp_path / "registry-whole", *window)
    from_archive, output = _train(archive, tmp_path / "registry", *window)
    # the latest fold tests 07-10 .. 07-16; the earlier one trains from 06-24, less 38 days
    assert "archive: its days 2026-05-17 .. 2026-07-16 (the windows" in output
    for key in ("metrics", "thresholds", "train_rows", "test_rows", "test_frauds"):
        assert from_archive[key] == from_whole[key], key


def test_a_champion_promoted_mid_run_is_not_judged_on_days_the_run_did_not_read(
    long_archive: tuple[Path, Path], tmp_path: Path
) -> None:
    """The days read were chosen for a `core` champion; an `extended` one promoted while
    the run worked would be scored on a history cut too short, so the gate declines."""
    _, archive = long_archive
    registry = ModelRegistry(tmp_path / "registry")
    extended, _ = _train(archive, registry.root, "--feature-set", "extended")
    since = date(2026, 7, 8)  # what a `core` run over a `core` champion reads
    # the champion is scored on the test window (from 08-24): 90 days of reach and a margin
    options = PipelineOptions(feature_set=CORE_FEATURE_SET, train_days=7, delay_days=2)
    run = run_training(read_history(archive, since=since), registry=registry, options=options,
                       read_since=since)  # fmt: skip
    assert not run.promoted
    assert "needs the history from 2026-05-25, and this run read from 2026-07-08" in (
        run.gate.reason
    )
    assert registry.champion_version() == extended["model_version"]


def test_a_failed_seed_leaves_nothing_and_a_half_written_day_does_not_count(
    history: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_parquet", disk_full)
        with pytest.raises(OSError, match="No space left"):
            seed_archive(history, tmp_path / "archive")
    assert list(tmp_path.iterdir()) == []  # no staging copy, no half archive
    seed_archive(history, tmp_path / "archive")
    last = archive_last_day(tmp_path / "archive")
    assert last == history["event_time"].max().date()
    # the archiver died writing the first part of a new day: only its .tmp is there
    torn = tmp_path / "archive" / "transactions" / f"day={last + timedelta(days=1)}"
    torn.mkdir()
    (torn / "part-x.tmp").write_bytes(b"half")
    assert archive_last_day(tmp_path / "archive") == last
    assert len(read_archive(tmp_path / "archive")) == len(history)


def test_reading_an_archive_drops_repeats_and_takes_each_payments_latest_verdict(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """At-least-once writes repeat payments; an analyst's later verdict overrides."""
    seed_archive(history, tmp_path / "archive")
    first_day = (
        tmp_path / "archive" / "transactions" / f"day={history['event_time'].min():%Y-%m-%d}"
    )
    (part,) = first_day.glob("*.parquet")
    shutil.copy(part, first_day / "part-repeat.parquet")  # the archiver re-wrote it
    frauds = history[history["is_fraud"] == 1]
    overturned, confirmed_late = frauds["transaction_id"].iloc[0], history["transaction_id"].iloc[1]
    later = frauds["label_time"].max() + pd.Timedelta(days=1)
    corrections = pd.DataFrame(
        {
            "transaction_id": [overturned, confirmed_late, "not-archived"],
            "is_fraud": [False, True, True],
            "label_time": [later, later, later],
            "analyst": "alice",
        }
    )
    labels = tmp_path / "archive" / "labels" / f"day={later:%Y-%m-%d}"
    labels.mkdir(parents=True, exist_ok=True)
    corrections.to_parquet(labels / "part-corrections.parquet", index=False)

    archived = read_archive(tmp_path / "archive").set_index("transaction_id")
    assert len(archived) == len(history)  # the repeated day counted once
    assert archived.loc[overturned, "is_fraud"] == 0
    assert archived.loc[confirmed_late, "is_fraud"] == 1
    assert archived.loc[confirmed_late, "label_time"] == later
    assert archived["is_fraud"].sum() == history["is_fraud"].sum()  # one out, one in
    assert "not-archived" not in archived.index
    since = history["event_time"].min().date() + timedelta(days=1)
    assert len(read_archive(tmp_path / "archive", since=since)) == int(
        (history["event_time"].dt.date >= since).sum()
    )


def test_an_archive_too_short_for_the_windows_is_one_clear_line(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    seed_archive(history[history["event_time"] < "2026-10-07"], tmp_path / "archive")
    where = ["--history", str(tmp_path / "archive"), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where, *_SPLIT])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "holds no payments from" in result.output
    assert "the archive is too short" in result.output
    explicit = CliRunner().invoke(cli, ["train", *where, *_SPLIT, "--train-start", "2026-08-01"])
    assert explicit.exit_code == 1
    assert (
        "the archive holds 2026-10-01 to 2026-10-06; choose another --train-start than "
        "2026-08-01" in explicit.output
    )


def test_a_last_test_day_without_payments_trains_as_on_the_file(
    history: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The read stops at the test window's end; a day there without payments (an
    archiver outage) is still a day the history covers."""
    gap = history[history["event_time"].dt.strftime("%Y-%m-%d") != "2026-10-18"]
    gap.to_parquet(tmp_path / "history.parquet")
    seed_archive(gap, tmp_path / "archive")
    split = ["--train-days", "5", "--delay-days", "1", "--test-days", "3",
             "--label-delay-days", "1"]  # fmt: skip
    runs = {}
    for name in ("history.parquet", "archive"):
        where = ["--history", str(tmp_path / name), "--registry", str(tmp_path / f"r-{name}")]
        result = CliRunner().invoke(cli, ["train", *where, *split, "--json"])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads(result.output.strip().splitlines()[-1])
    assert ".. 2026-10-18 (the windows" in result.output  # the test window is 10-16 .. 10-18
    for key in ("metrics", "train_rows", "test_rows", "test_frauds"):
        assert runs["archive"][key] == runs["history.parquet"][key], key
    # the gap is said, not only absorbed: in the log, the metadata and the report
    assert "no payments on 2026-10-18, in the windows of this run" in caplog.text
    registry = ModelRegistry(tmp_path / "r-archive")
    assert registry.metadata(1).extra["days_without_payments"] == ["2026-10-18"]
    report = (registry.version_dir(1) / "report" / "index.html").read_text()
    assert "It holds no payments on 2026-10-18, days of the windows" in report
    # the archive starts after the first day the features would reach: said, not implied
    assert "(it starts on 2026-10-01)." in report


def test_an_explicit_window_past_the_archive_is_refused_as_on_the_file(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """Not tested on the days that exist (2 of 7), and promoted; the archive's own span is
    said (it named only the days read, from the features' look-back on)."""
    history.to_parquet(tmp_path / "history.parquet")
    seed_archive(history, tmp_path / "archive")
    # past its end, and before its start (the archive's said only what was read, or nothing)
    for start, needs in [
        ("2026-10-08", "2026-10-08 to 2026-10-23"),
        ("2026-09-28", "2026-09-28 to 2026-10-13"),
    ]:
        for name in ("history.parquet", "archive"):
            where = ["--history", str(tmp_path / name), "--registry", str(tmp_path / f"r-{name}")]
            result = CliRunner().invoke(cli, ["train", *where, *_SPLIT, "--train-start", start])
            assert result.exit_code == 1, result.output
            holds = "archive holds" if name == "archive" else "history covers"
            assert f"needs days {needs}, but the {holds} 2026-10-01 to 2026-10-20;" in " ".join(
                result.output.split()
            ), result.output
            assert not (tmp_path / f"r-{name}" / "versions").exists()


def test_what_is_not_a_day_of_the_archive_is_not_read_as_one(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """A copy made by hand beside the days, and a day whose only part is empty (it must
    not turn the archive into a file read whole)."""
    archive = tmp_path / "archive"
    seed_archive(history, archive)
    last_ms = archive_last_event_ms(archive)
    days = archive / "transactions"
    shutil.copytree(days / "day=2026-10-20", days / "day=2026-10-20.bak")
    (days / "day=garbage").mkdir()
    (days / "day=2026-W43-1").mkdir()  # an ISO week date, which fromisoformat takes
    shutil.copy(next((days / "day=2026-10-20").glob("*.parquet")), days / "day=2026-W43-1")
    empty = days / "day=2026-10-21"
    empty.mkdir()
    history.iloc[:0].to_parquet(empty / "part-empty.parquet", index=False)
    assert archive_last_event_ms(archive) == last_ms
    assert len(read_archive(archive)) == len(history)


def test_payments_dated_in_the_future_are_one_line_naming_their_day(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """Written by other means than the archiver (which refuses them), they would put the
    latest window after every real payment: "the archive is too short", at every tick."""
    archive = tmp_path / "archive"
    seed_archive(history, archive)
    future = archive / "transactions" / "day=2030-01-01"
    future.mkdir()
    stray = history.iloc[:3].assign(event_time=pd.Timestamp("2030-01-01 12:00", tz="UTC"))
    stray.assign(transaction_id=["f1", "f2", "f3"]).to_parquet(future / "part-x.parquet")
    where = ["--history", str(archive), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where, *_SPLIT])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "holds payments dated 2030-01-01, in the future; move its" in result.output


def test_a_part_damaged_by_a_crash_is_one_line_naming_its_day(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    seed_archive(history, archive)
    (archive / "transactions" / "day=2026-10-20" / "part-crash.parquet").write_bytes(b"")
    where = ["--history", str(archive), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where, *_SPLIT])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert "day=2026-10-20 cannot be read (ArrowInvalid" in result.output
    assert "move the damaged part out of" in result.output


def _damage_inside(part: Path) -> None:
    """Garbage over each column's first data page, its footer intact: a disk's bad
    sector, not a crash's truncation. pyarrow's error then names no file."""
    metadata = pq.ParquetFile(part).metadata
    offsets = [metadata.row_group(0).column(i).data_page_offset for i in range(3)]
    data = bytearray(part.read_bytes())
    for offset in offsets:
        data[offset + 12 : offset + 40] = b"\xff" * 28
    part.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated", "inside"])
def test_a_damaged_part_of_an_earlier_day_is_named_with_the_archives_fix(
    history: pd.DataFrame, tmp_path: Path, damage: str
) -> None:
    """It was told to give "a `fraud archive` directory", which it was; damaged inside,
    it said only "Corrupt snappy compressed data", of hundreds of parts."""
    archive = tmp_path / "archive"
    seed_archive(history, archive)
    part = next((archive / "transactions" / "day=2026-10-12").glob("part-*.parquet"))
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[:200])
    else:
        _damage_inside(part)
    where = ["--history", str(archive), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where, *_SPLIT])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.endswith(
        f"{part} is damaged: move it out of the archive (or restore it from a backup)"
    ), last


def test_the_last_event_is_cut_to_the_millisecond_as_the_offline_clock_is(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    late = history.copy()
    last = late["event_time"].idxmax()
    late.loc[last, "event_time"] = pd.Timestamp("2026-10-20 23:59:59.998999700", tz="UTC")
    seed_archive(late, tmp_path / "archive")
    assert archive_last_event_ms(tmp_path / "archive") == int(epoch_ms(late["event_time"]).max())


def test_a_live_run_with_the_seeds_settings_issues_new_ids(history: pd.DataFrame) -> None:
    """The compose stack seeds the archive and runs the live simulator with the same seed:
    live payments reusing the seed's ids were dropped as repeats, and their verdicts
    landed on weeks-old payments."""
    generator = TrafficGenerator(SimulationConfig(cards=200, merchants=20, seed=3))
    live = generator.events(start=datetime(2026, 12, 6, tzinfo=UTC))
    ids = {next(live).transaction.transaction_id for _ in range(2000)}
    assert len(ids) == 2000
    assert not ids & set(history["transaction_id"])
    # the same start gives the same ids: a history is reproducible
    again = TrafficGenerator(SimulationConfig(cards=200, merchants=20, seed=3)).history(
        start=datetime(2026, 10, 1, tzinfo=UTC), days=1
    )
    assert set(again["transaction_id"]) <= set(history["transaction_id"])


def test_a_reused_id_at_another_time_is_dropped_and_said(
    history: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_archive(history, tmp_path / "archive")
    last_day = history["event_time"].max()
    day = tmp_path / "archive" / "transactions" / f"day={last_day:%Y-%m-%d}"
    (part,) = day.glob("*.parquet")
    # 3 payments of the last day under the ids of the first day's first 3 (as archived)
    first_ids = history["transaction_id"].head(3).tolist()
    pd.read_parquet(part).tail(3).assign(transaction_id=first_ids).to_parquet(
        day / "part-reused.parquet", index=False
    )
    with caplog.at_level("WARNING", logger="feature_store.archive"):
        archived = read_archive(tmp_path / "archive")
    assert len(archived) == len(history)
    (record,) = caplog.records
    assert "3 payment(s) reuse the transaction_id of an earlier payment" in record.getMessage()
    caplog.clear()
    shutil.copy(part, day / "part-repeat.parquet")  # a plain repeat says nothing
    (day / "part-reused.parquet").unlink()
    with caplog.at_level("WARNING", logger="feature_store.archive"):
        read_archive(tmp_path / "archive")
    assert not caplog.records


def test_a_verdict_on_no_archived_payment_is_counted_and_said(
    history: pd.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Verdicts on payments of days not read are expected and said nothing of; a verdict
    whose payment is on no day of the archive is counted, whatever the days read."""
    seed_archive(history, tmp_path / "archive")
    first_day = history["event_time"].min()
    on_first_day = history.loc[history["event_time"].dt.date == first_day.date(), "transaction_id"]
    later = history["event_time"].max() + pd.Timedelta(days=1)
    verdicts = pd.DataFrame(
        {
            "transaction_id": [on_first_day.iloc[0], "lost-1", "lost-2"],
            "is_fraud": [True, True, False],
            "label_time": [later] * 3,
            "analyst": "alice",
        }
    )
    labels = tmp_path / "archive" / "labels" / f"day={later:%Y-%m-%d}"
    labels.mkdir(parents=True, exist_ok=True)
    verdicts.to_parquet(labels / "part-verdicts.parquet", index=False)
    since = first_day.date() + timedelta(days=1)
    for window in ({}, {"since": since}, {"until": since}):
        caplog.clear()
        with caplog.at_level("WARNING", logger="feature_store.archive"):
            read_archive(tmp_path / "archive", **window)
        (record,) = caplog.records
        assert "2 verdict(s) name no archived payment (e.g. lost-" in record.getMessage()
    verdicts.head(1).to_parquet(labels / "part-verdicts.parquet", index=False)
    caplog.clear()
    with caplog.at_level("WARNING", logger="feature_store.archive"):
        read_archive(tmp_path / "archive", since=since)  # its payment is on a day not read
    assert not caplog.records
    # a hand-written part without a verdict time: every unread day is searched
    verdicts.iloc[[0, 1]].assign(
        label_time=pd.Series([pd.NaT] * 2, dtype="datetime64[ns, UTC]")
    ).to_parquet(labels / "part-verdicts.parquet", index=False)
    with caplog.at_level("WARNING", logger="feature_store.archive"):
        read_archive(tmp_path / "archive", since=since)
    (record,) = caplog.records
    assert "1 verdict(s) name no archived payment (e.g. lost-1)" in record.getMessage()
    # one given before the first day read was looked at by the reads that reached it
    verdicts.iloc[[1]].assign(label_time=first_day).to_parquet(
        labels / "part-verdicts.parquet", index=False
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="feature_store.archive"):
        read_archive(tmp_path / "archive", since=since)
    assert not caplog.records
    with caplog.at_level("WARNING", logger="feature_store.archive"):
        read_archive(tmp_path / "archive")  # such a read
    (record,) = caplog.records
    assert "1 verdict(s) name no archived payment (e.g. lost-1)" in record.getMessage()


def test_a_verdict_given_again_counts_from_the_first_time_and_a_reversal_from_itself(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """A chargeback confirming an analyst's fraud verdict days later must not make the
    card known later: the split and the features take a fraud as known from its label."""
    seed_archive(history, tmp_path / "archive")
    legit = history[history["is_fraud"] == 0]["transaction_id"]
    again, reversed_, back, untimed, confirmed = (legit.iloc[i] for i in range(5))
    t = [history["event_time"].max() + pd.Timedelta(days=d) for d in (1, 3, 5)]
    verdicts = pd.DataFrame(
        {
            "transaction_id": [
                *(again, again, reversed_, reversed_, back, back, back, untimed),
                *(confirmed, confirmed),
            ],
            "is_fraud": [True, True, True, False, True, False, True, True, True, True],
            "label_time": [t[0], t[1], t[0], t[1], t[0], t[1], t[2], pd.NaT, pd.NaT, t[1]],
            "analyst": "alice",
        }
    )
    # a hand-written part may hold a verdict without a time: filed with the first day's
    days = verdicts["label_time"].fillna(t[0]).dt.date
    for day, part in verdicts.groupby(days):
        directory = tmp_path / "archive" / "labels" / f"day={day:%Y-%m-%d}"
        directory.mkdir(parents=True, exist_ok=True)
        part.to_parquet(directory / "part-verdicts.parquet", index=False)

    archived = read_archive(tmp_path / "archive").set_index("transaction_id")
    assert (archived.loc[again, "is_fraud"], archived.loc[again, "label_time"]) == (1, t[0])
    assert (archived.loc[reversed_, "is_fraud"], archived.loc[reversed_, "label_time"]) == (
        0,
        t[1],
    )
    assert (archived.loc[back, "is_fraud"], archived.loc[back, "label_time"]) == (1, t[2])
    # no time of its own: none (the features then assume the label delay), not a neighbour's
    assert archived.loc[untimed, "is_fraud"] == 1
    assert pd.isna(archived.loc[untimed, "label_time"])
    # an untimed verdict before a timed one that agrees: the timed one's (it erased it)
    assert (archived.loc[confirmed, "is_fraud"], archived.loc[confirmed, "label_time"]) == (
        1,
        t[1],
    )


@pytest.mark.parametrize("order", ["analyst first", "analyst last"])
def test_which_verdict_wins_does_not_depend_on_the_order_of_the_parts(
    history: pd.DataFrame, tmp_path: Path, order: str
) -> None:
    """Parts are read in the order of their random names: at one time, the analyst's
    verdict wins over one written from a history; a verdict without a time never wins
    over a timed one."""
    archive = tmp_path / "archive"
    seed_archive(history.assign(is_fraud=0), archive)
    tied, untimed = history["transaction_id"].iloc[0], history["transaction_id"].iloc[1]
    at = history["event_time"].max() + pd.Timedelta(days=1)
    analyst = pd.DataFrame(
        {"transaction_id": [tied, untimed], "is_fraud": [False, False], "label_time": [at, at]}
    ).assign(analyst="alice")
    made_up = pd.DataFrame(
        {"transaction_id": [tied, untimed], "is_fraud": [True, True], "label_time": [at, pd.NaT]}
    ).assign(analyst="backfill")
    parts = [analyst, made_up] if order == "analyst first" else [made_up, analyst]
    directory = archive / "labels" / f"day={at:%Y-%m-%d}"
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in zip(("part-a.parquet", "part-b.parquet"), parts, strict=True):
        part.to_parquet(directory / name, index=False)
    archived = read_archive(archive).set_index("transaction_id")
    assert archived.loc[tied, "is_fraud"] == 0
    assert (archived.loc[untimed, "is_fraud"], archived.loc[untimed, "label_time"]) == (0, at)


def test_parts_a_killed_writer_left_are_removed_once_a_day_old(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """They were never removed; one still being written (fresh) is left alone."""
    archive = tmp_path / "archive"
    seed_archive(history[history["event_time"] < "2026-10-03"], archive)
    day = archive / "transactions" / "day=2026-10-01"
    old, fresh = day / "part-old.tmp", day / "part-fresh.tmp"
    for part in (old, fresh):
        part.write_bytes(b"half a part")
    two_days_ago = time.time() - 2 * 86_400
    os.utime(old, (two_days_ago, two_days_ago))
    assert remove_abandoned_parts(archive) == 1
    assert not old.exists()
    assert fresh.exists()
    assert len(read_archive(archive)) == int((history["event_time"] < "2026-10-03").sum())
