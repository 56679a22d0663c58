"""Backfilling an archive: the payments and verdicts of a labelled history it does not hold
are added (by transaction id), what it holds is left as it is, days that have not ended
are left out, and a backfill that stopped half way is finished by running it again."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import feature_store.archive.backfill as backfill_module
from feature_store import CORE_FEATURE_SET
from feature_store.archive import backfill_archive, read_archive, seed_archive
from feature_store.archive.layout import write_days
from feature_store.errors import ArchiveBusyError, HistoryColumnsError, HistoryFormatError
from feature_store.locking import exclusive
from feature_store.offline import offline_feature_matrix
from fraud_cli.main import cli
from simulator.config import SimulationConfig
from simulator.generator import TrafficGenerator


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """20 days, 10-01 .. 10-20."""
    generator = TrafficGenerator(SimulationConfig(cards=200, merchants=20, seed=3))
    return generator.history(start=datetime(2026, 10, 1, tzinfo=UTC), days=20)


def _days(first: int, last: int) -> tuple[date, ...]:
    return tuple(date(2026, 10, d) for d in range(first, last + 1))


def _the_whole_history(archive: Path, history: pd.DataFrame) -> None:
    archived = read_archive(archive)
    original = history.sort_values("event_time", kind="stable").reset_index(drop=True)
    assert archived["transaction_id"].tolist() == original["transaction_id"].tolist()
    np.testing.assert_array_equal(archived["is_fraud"], original["is_fraud"])
    np.testing.assert_array_equal(
        offline_feature_matrix(CORE_FEATURE_SET, archived),
        offline_feature_matrix(CORE_FEATURE_SET, original),
    )


def test_the_days_before_an_archive_began_are_added_and_its_own_left(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    later = history[history["event_time"] >= "2026-10-11"]
    seed_archive(later, archive)  # as the archiver would have written them
    done = backfill_archive(history, archive)
    assert (done.added, done.held) == (_days(1, 10), _days(11, 20))
    earlier = history[history["event_time"] < "2026-10-11"]
    assert (done.transactions, done.labels) == (len(earlier), int(earlier["is_fraud"].sum()))
    _the_whole_history(archive, history)
    again = backfill_archive(history, archive)
    assert (again.added, again.held, again.transactions, again.labels) == ((), _days(1, 20), 0, 0)
    _the_whole_history(archive, history)


def test_no_archive_yet_is_started_with_the_whole_history(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    done = backfill_archive(history, tmp_path / "archive")
    assert (done.added, done.held, done.transactions) == (_days(1, 20), (), len(history))
    _the_whole_history(tmp_path / "archive", history)


def test_the_rest_of_the_day_the_archiver_started_on_is_added(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """The archiver's first day is partial: holding it skipped its morning."""
    archive = tmp_path / "archive"
    started = pd.Timestamp("2026-10-11T12:00:00Z")
    seed_archive(history[history["event_time"] >= started], archive)
    done = backfill_archive(history, archive)
    assert (done.added, done.completed, done.held) == (_days(1, 10), _days(11, 11), _days(12, 20))
    earlier = history[history["event_time"] < started]
    assert (done.transactions, done.labels) == (len(earlier), int(earlier["is_fraud"].sum()))
    _the_whole_history(archive, history)
    again = backfill_archive(history, archive)
    assert (again.added, again.completed, again.transactions) == ((), (), 0)


def test_a_backfill_that_stopped_half_way_is_finished_by_running_it_again(
    history: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed, or a full disk, after the labels and some days' payments: the re-run
    adds the other days, and every verdict is there once."""
    archive = tmp_path / "archive"
    seed_archive(history[history["event_time"] >= "2026-10-11"], archive)

    def two_days_then_full(out: Path, frame: pd.DataFrame, time_column: str) -> int:
        if out.name == "transactions":
            day = pd.to_datetime(frame[time_column], utc=True).dt.strftime("%Y-%m-%d")
            write_days(out, frame[day.isin(["2026-10-01", "2026-10-02"])], time_column)
            raise OSError(28, "No space left on device")
        return write_days(out, frame, time_column)

    monkeypatch.setattr(backfill_module, "write_days", two_days_then_full)
    with pytest.raises(OSError, match="No space left"):
        backfill_archive(history, archive)
    monkeypatch.undo()
    assert backfill_archive(history, archive).added == _days(3, 10)
    _the_whole_history(archive, history)  # each verdict once, though written twice


def test_an_index_with_repeats_and_ids_read_as_floats_are_archived_as_the_stream_has_them(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """A frame concatenated from parts repeats its index (the labels failed), and a
    numbered column with a blank is read as floats (5411 was written "5411.0")."""
    repeated = pd.concat([history.iloc[:100], history.iloc[100:]]).copy()
    repeated.index = [i % 100 for i in range(len(repeated))]
    repeated["mcc"] = [5411.0, None] * (len(repeated) // 2) + [5411.0] * (len(repeated) % 2)
    done = backfill_archive(repeated, tmp_path / "archive")
    assert done.labels == int(history["is_fraud"].sum())
    archived = read_archive(tmp_path / "archive")
    assert set(archived["mcc"].dropna()) == {"5411"}
    assert int(archived["is_fraud"].sum()) == int(history["is_fraud"].sum())


def test_an_archive_holding_only_labels_yet_is_backfilled(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """An archiver whose first flush saw only labels: taken for a full directory."""
    archive = tmp_path / "archive"
    (archive / "labels" / "day=2026-10-20").mkdir(parents=True)
    done = backfill_archive(history, archive)
    assert done.added == _days(1, 20)
    _the_whole_history(archive, history)


def test_the_command_backfills_the_handbooks_numbered_ids_as_text(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """`fraud archive --backfill PATH --columns handbook`: ids become the text the stream's
    events carry, so the archive's days read together."""
    raw = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(len(history)),
            "TX_DATETIME": history["event_time"].dt.tz_localize(None),
            "CUSTOMER_ID": pd.factorize(history["card_id"])[0],
            "TERMINAL_ID": pd.factorize(history["merchant_id"])[0],
            "TX_AMOUNT": history["amount"],
            "TX_FRAUD": history["is_fraud"],
        }
    )
    raw.to_csv(tmp_path / "handbook.csv", index=False)
    archive = tmp_path / "archive"
    command = ["archive", "--out", str(archive), "--backfill", str(tmp_path / "handbook.csv")]
    result = CliRunner().invoke(cli, [*command, "--columns", "handbook"])
    assert result.exit_code == 0, result.output
    frauds = int(history["is_fraud"].sum())
    assert (
        f"wrote {len(history):,} transactions and {frauds:,} fraud labels to {archive}: "
        "added 20 days (2026-10-01 .. 2026-10-20)\n"
    ) in result.output
    archived = read_archive(archive)
    assert archived["transaction_id"].tolist() == [str(i) for i in range(len(history))]
    assert all(isinstance(card, str) for card in archived["card_id"])
    assert int(archived["is_fraud"].sum()) == frauds
    again = CliRunner().invoke(cli, [*command, "--columns", "handbook"])
    assert again.output.endswith(
        f"wrote 0 transactions and 0 fraud labels to {archive}: 20 days "
        "(2026-10-01 .. 2026-10-20) it held whole: their payments left as they were\n"
    )
    # days that are not one run are said as their runs
    raw[history["event_time"].dt.day.isin([5, 6, 9]).to_numpy()].to_csv(
        tmp_path / "three-days.csv", index=False
    )
    gaps = tmp_path / "gaps"
    for source in ("three-days.csv", "handbook.csv"):
        filled = CliRunner().invoke(
            cli,
            [
                "archive",
                "--out",
                str(gaps),
                "--backfill",
                str(tmp_path / source),
                "--columns",
                "handbook",
            ],
        )
    assert (
        "added 17 days (2026-10-01 .. 2026-10-04, 2026-10-07 .. 2026-10-08, "
        "2026-10-10 .. 2026-10-20)"
    ) in filled.output
    assert "3 days (2026-10-05 .. 2026-10-06, 2026-10-09) it held whole" in filled.output


def test_an_empty_history_starts_an_archive_and_another_starting_it_meanwhile_is_said(
    history: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = backfill_archive(history.iloc[:0], tmp_path / "empty")
    assert (done.added, done.transactions) == ((), 0)
    assert (tmp_path / "empty" / "transactions").is_dir()  # an archive, of no payments
    archive = tmp_path / "archive"

    def another_seeds_meanwhile(out: Path, frame: pd.DataFrame, time_column: str) -> int:
        (archive / "transactions").mkdir(parents=True, exist_ok=True)  # the other process
        return write_days(out, frame, time_column)

    monkeypatch.setattr(backfill_module, "write_days", another_seeds_meanwhile)
    with pytest.raises(ArchiveBusyError, match="was started by another backfill or seed"):
        backfill_archive(history, archive)
    assert [p.name for p in tmp_path.iterdir() if "seeding" in p.name] == []


def test_a_history_without_labels_is_refused(history: pd.DataFrame, tmp_path: Path) -> None:
    unlabelled: Any = history.drop(columns=["is_fraud"])
    with pytest.raises(Exception, match="needs is_fraud"):
        backfill_archive(unlabelled, tmp_path / "archive")
    assert not (tmp_path / "archive").exists()


def test_an_out_that_is_no_archive_is_refused_as_such(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """It said "[Errno 20] Not a directory", or to seed a new archive."""
    (tmp_path / "a-file").write_text("")
    with pytest.raises(FileExistsError, match="a-file is a file; give an archive directory"):
        backfill_archive(history, tmp_path / "a-file")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("")
    with pytest.raises(FileExistsError, match="holds files but is not an archive"):
        backfill_archive(history, tmp_path / "junk")


def test_a_first_day_whose_partitions_started_at_different_times_is_completed_by_id(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """Kafka deletes old data per partition: the archiver's first day started at 03:00 on
    one partition and 11:00 on the other. Cutting at the earliest archived payment lost
    the other partition's morning for good."""
    archive = tmp_path / "archive"
    times = history["event_time"]
    odd = pd.Series(pd.factorize(history["card_id"])[0] % 2 == 1, index=history.index)
    started = times.dt.normalize() + pd.to_timedelta(np.where(odd, 3, 11), unit="h")
    archived = (times >= "2026-10-12") | ((times >= "2026-10-11") & (times >= started))
    seed_archive(history[archived], archive)
    done = backfill_archive(history, archive)
    assert (done.added, done.completed, done.held) == (_days(1, 10), _days(11, 11), _days(12, 20))
    assert done.transactions == int((~archived).sum())
    _the_whole_history(archive, history)


def test_an_analysts_verdict_is_kept_and_a_verdict_the_archive_lacks_is_added(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """The history's made-up label time (payment + 7 days) overrode an analyst's real,
    earlier reversal; and a fraud whose payment the archive held got no verdict."""
    archive = tmp_path / "archive"
    later = history[history["event_time"] >= "2026-10-11"]
    frauds = later[later["is_fraud"] == 1]
    cleared, unlabelled = frauds["transaction_id"].iloc[0], frauds["transaction_id"].iloc[1]
    seed_archive(later.assign(is_fraud=0), archive)  # payments the archiver wrote
    reversal = pd.DataFrame(
        {
            "transaction_id": [cleared],
            "is_fraud": [False],
            "label_time": [frauds["event_time"].iloc[0] + pd.Timedelta(hours=1)],
            "analyst": ["ana"],
        }
    )
    write_days(archive / "labels", reversal, "label_time")
    done = backfill_archive(
        history.assign(label_time=pd.Series(pd.NaT, index=history.index)), archive
    )
    verdicts = read_archive(archive).set_index("transaction_id")["is_fraud"]
    assert verdicts[cleared] == 0
    assert verdicts[unlabelled] == 1
    assert done.labels == int(history["is_fraud"].sum()) - 1
    assert int(verdicts.sum()) == int(history["is_fraud"].sum()) - 1


def test_a_verdict_dated_ahead_is_known_by_now_so_a_later_clearing_wins(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """A simulated history's label times can lie ahead of the backfill; such a verdict
    read as the latest over an analyst's clearing given after the backfill."""
    now = pd.Timestamp("2026-10-21T00:00:00Z")
    fraud = history.loc[history["is_fraud"] == 1, "transaction_id"].iloc[-1]
    ahead = history["label_time"].where(
        history["transaction_id"] != fraud, now + pd.Timedelta(days=5)
    )
    archive = tmp_path / "archive"
    backfill_archive(history.assign(label_time=ahead), archive, now=now)
    assert pd.read_parquet(archive / "labels")["label_time"].max() == now
    clearing = pd.DataFrame(
        {
            "transaction_id": [fraud],
            "is_fraud": [False],
            "label_time": [now + pd.Timedelta(hours=1)],
            "analyst": ["ana"],
        }
    )
    write_days(archive / "labels", clearing, "label_time")
    assert read_archive(archive).set_index("transaction_id").loc[fraud, "is_fraud"] == 0


def test_a_day_the_archiver_is_writing_is_left_and_made_up_label_times_are_not_in_the_future(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """The archiver is writing today: a backfill adding today's payments too would write
    them twice (and count them twice against the row limit). Today not yet archived is
    added, as any other day."""
    now = pd.Timestamp("2026-10-15T12:00:00Z")
    unlabelled = history.assign(label_time=pd.Series(pd.NaT, index=history.index))
    so_far = unlabelled[unlabelled["event_time"] <= now]
    archive, before_today = tmp_path / "archive", tmp_path / "before-today"
    archived = so_far[so_far["event_time"] >= "2026-10-11"].assign(is_fraud=0)  # no verdicts
    seed_archive(archived, archive, now=now)
    seed_archive(archived[archived["event_time"] < "2026-10-15"], before_today, now=now)
    done = backfill_archive(so_far, archive, now=now)
    assert (done.added, done.held, done.left) == (_days(1, 10), _days(11, 14), _days(15, 15))
    labels = pd.read_parquet(archive / "labels")
    assert labels["label_time"].max() <= now  # frauds of 10-09 on: known by now, not later
    verdicts = read_archive(archive).set_index("transaction_id")["is_fraud"]
    today = so_far[so_far["event_time"] >= "2026-10-15"]
    frauds_today = today.loc[today["is_fraud"] == 1, "transaction_id"]
    assert len(frauds_today)
    assert (verdicts[frauds_today] == 0).all()  # a day left out gets no verdicts either
    assert done.labels == int(so_far["is_fraud"].sum()) - len(frauds_today)
    assert backfill_archive(so_far, before_today, now=now).added == _days(1, 10) + _days(15, 15)
    with pytest.raises(HistoryColumnsError, match=r"payment\(s\) are dated after now"):
        backfill_archive(unlabelled, archive, now=now)
    later = pd.Timestamp("2026-10-21T00:00:00Z")
    again = backfill_archive(unlabelled, archive, now=later)
    assert (again.added, again.completed, again.left) == (_days(16, 20), _days(15, 15), ())
    archived = read_archive(archive)
    original = history.sort_values("event_time", kind="stable")
    assert archived["transaction_id"].tolist() == original["transaction_id"].tolist()
    assert archived["is_fraud"].tolist() == original["is_fraud"].tolist()


def test_a_payment_archived_on_another_day_is_not_written_again(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """A history whose clock is an hour off puts a payment on the day before the
    archive's: only held days were searched, and the read kept the history's copy."""
    archive = tmp_path / "archive"
    seed_archive(history[history["event_time"] >= "2026-10-11"], archive)
    moved = history.copy()
    first = moved.index[moved["event_time"] >= "2026-10-11"][0]
    moved.loc[first, "event_time"] = pd.Timestamp("2026-10-10T23:30:00Z")
    done = backfill_archive(moved, archive)
    assert done.transactions == int((history["event_time"] < "2026-10-11").sum())
    _the_whole_history(archive, history)


def test_a_second_backfill_at_once_is_refused_naming_the_first(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    seed_archive(history[history["event_time"] >= "2026-10-11"], archive)
    with exclusive(archive / ".backfill.lock") as mine:
        assert mine
        with pytest.raises(ArchiveBusyError, match=rf"another backfill \(pid {os.getpid()}\)"):
            backfill_archive(history, archive)
    assert backfill_archive(history, archive).added == _days(1, 10)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"is_fraud": "maybe"}, "is_fraud is not 0 or 1"),
        ({"event_time": pd.NaT}, "without event_time"),
        ({"amount": -1.0}, "missing, negative or NaN amount"),
        # what the stream's contract refuses
        ({"card_id": "4111 1111 1111 1111"}, "1 card_id(s) holding a card number"),
        ({"card_id": "\uff14" + "\uff11" * 15}, "1 card_id(s) holding a card number"),
        ({"transaction_id": ""}, "1 row(s) with a missing or empty transaction_id"),
        ({"transaction_id": None}, "1 row(s) with a missing or empty transaction_id"),
        ({"card_id": ""}, "1 row(s) with a missing or empty card_id"),
        ({"merchant_id": "m" * 65}, "1 merchant_id(s) missing, empty or over 64"),
        ({"mcc": "5" * 33}, "1 mcc(s) over 32 characters"),
        ({"amount": 2e9}, "1 amount(s) above 1,000,000"),
    ],
)
def test_rows_the_archiver_would_refuse_are_refused_before_anything_is_written(
    history: pd.DataFrame, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    bad = history.astype({"is_fraud": object, "transaction_id": object, "card_id": object})
    for column, value in change.items():
        bad.loc[bad.index[5], column] = value
    with pytest.raises(HistoryColumnsError, match=re.escape(message)) as refused:
        seed_archive(bad, tmp_path / "archive")
    assert "1111" not in str(refused.value)
    assert "\uff14\uff11" not in str(refused.value)
    assert not (tmp_path / "archive").exists()


def test_labels_written_as_text_keep_their_meaning_and_payments_after_now_are_refused(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """``astype(bool)`` read the text "0" as a fraud."""
    texts = history.assign(is_fraud=history["is_fraud"].astype(str))
    seed_archive(texts, tmp_path / "archive")
    assert read_archive(tmp_path / "archive")["is_fraud"].sum() == history["is_fraud"].sum()
    with pytest.raises(HistoryColumnsError, match=r"payment\(s\) are dated after now"):
        seed_archive(history, tmp_path / "other", now=pd.Timestamp("2026-10-10T00:00:00Z"))


def test_a_seed_syncs_every_part_day_and_directory_name_it_writes(
    history: pd.DataFrame, tmp_path: Path, synced_paths: list[str]
) -> None:
    """A part synced into a directory whose own name is not is lost in a power cut."""
    synced = synced_paths
    root = tmp_path / "state"
    seed_archive(history[history["event_time"] < "2026-10-03"], root / "archive")
    parts = [Path(p) for p in synced if p.endswith(".tmp")]
    assert len([p for p in parts if p.parent.parent.name == "transactions"]) == 2  # 2 days
    for part in parts:  # its day's, its kind's and the staging root's names
        for directory in (part.parent, part.parent.parent, part.parent.parent.parent):
            assert str(directory) in synced
    assert synced[-1] == str(root)  # the rename into place, last


def test_a_history_under_other_ids_than_the_archives_is_refused(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """Completing held days by id would write every payment of those days twice."""
    archive = tmp_path / "archive"
    seed_archive(history[history["event_time"] >= "2026-10-11"], archive)
    renamed = history.assign(transaction_id="wh-" + history["transaction_id"])
    with pytest.raises(HistoryColumnsError, match="on 2026-10-11 the history's payments share no"):
        backfill_archive(renamed, archive)
    assert not (archive / "transactions" / "day=2026-10-01").exists()


def test_text_amounts_leading_zeros_in_csv_ids_and_a_damaged_part_are_handled(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    """A Parquet amount column of text was a traceback (training takes it); a CSV's
    00000042 became 42; a damaged archived part was a traceback."""
    texts = history.assign(amount=history["amount"].astype(str))
    texts.to_parquet(tmp_path / "text-amounts.parquet")
    padded = history.assign(transaction_id=[f"{i:08d}" for i in range(len(history))])
    padded.to_csv(tmp_path / "padded.csv", index=False)
    for source, out in (("text-amounts.parquet", "a"), ("padded.csv", "b")):
        command = ["archive", "--out", str(tmp_path / out), "--backfill", str(tmp_path / source)]
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, result.output
    assert read_archive(tmp_path / "b")["transaction_id"].iloc[0] == "00000000"
    part = next((tmp_path / "a" / "transactions" / "day=2026-10-05").glob("*.parquet"))
    part.write_bytes(part.read_bytes()[:500])
    with pytest.raises(HistoryFormatError, match="its transactions cannot be read"):
        backfill_archive(history, tmp_path / "a")


def test_an_out_that_is_no_archive_is_refused_before_the_history_is_read(
    tmp_path: Path,
) -> None:
    """It read the whole history (4 s, 0.8 GB for the handbook) before refusing."""
    (tmp_path / "a-file").write_text("")
    (tmp_path / "history.parquet").write_text("not Parquet: never read")
    out = tmp_path / "a-file"
    command = ["archive", "--out", str(out), "--backfill", str(tmp_path / "history.parquet")]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {out} is a file; give an archive directory, or a new one\n"


def test_a_staging_directory_a_killed_seed_left_is_removed_an_hour_later(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    old, fresh = tmp_path / ".archive.seeding-old", tmp_path / ".archive.seeding-fresh"
    for staging in (old, fresh):
        (staging / "transactions").mkdir(parents=True)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    backfill_archive(history, tmp_path / "archive")
    assert not old.exists()
    assert fresh.exists()  # another seed's, perhaps still writing
