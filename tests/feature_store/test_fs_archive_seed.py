"""Seeding an archive with a labelled history: training on it sees what the history says."""

from __future__ import annotations

import errno
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from feature_store import CORE_FEATURE_SET
from feature_store.archive import archive_last_day, read_archive, seed_archive
from feature_store.offline import offline_feature_matrix
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
    with pytest.raises(FileExistsError, match="is not empty"):
        seed_archive(history, tmp_path / "archive")
    # nothing is left beside it: the seed was renamed into place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive"]


def test_training_on_an_archive_reads_only_the_days_its_windows_reach(
    tmp_path: Path,
) -> None:
    """A run on a long archive reads from its earliest training day less the furthest
    feature reach, and trains exactly as on the whole history."""
    generator = TrafficGenerator(SimulationConfig(cards=600, merchants=60, seed=11))
    long_history = generator.history(start=datetime(2026, 5, 1, tzinfo=UTC), days=130)
    whole = tmp_path / "history.parquet"
    long_history.to_parquet(whole)
    seed_archive(long_history, tmp_path / "archive")
    split = ["--train-days", "7", "--delay-days", "2", "--test-days", "7", "--json"]
    runs = {}
    for name, source in (("whole", whole), ("archive", tmp_path / "archive")):
        where = ["--history", str(source), "--registry", str(tmp_path / f"registry-{name}")]
        result = CliRunner().invoke(cli, ["train", *where, *split])
        assert result.exit_code == 0, result.output
        runs[name] = json.loads(result.output.strip().splitlines()[-1])
    # 130 days, of which the run needs 7+2+7 days, 7 for the labels, 90 of reach and a margin
    assert "archive from 2026-05-16 ..." in result.output  # 09-07 - 23 - 91
    for key in ("metrics", "thresholds", "train_rows", "test_rows", "test_frauds"):
        assert runs["archive"][key] == runs["whole"][key], key


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
