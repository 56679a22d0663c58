"""`fraud simulate history`: what it writes, and what it refuses to overwrite or invent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from fraud_cli.main import cli

SMALL = ["simulate", "history", "--cards", "40", "--merchants", "5"]


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*SMALL, *args])
    return result.exit_code, result.output


def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path) -> None:
    out = tmp_path / "history.parquet"
    code, _ = _run("--days", "2", "--start", "2024-03-01", "--seed", "1", "--out", str(out))
    assert code == 0
    first = pd.read_parquet(out)

    code, output = _run("--days", "2", "--start", "2024-03-01", "--seed", "2", "--out", str(out))
    assert code == 1
    assert f"{out} exists; give --force to replace it" in output
    pd.testing.assert_frame_equal(pd.read_parquet(out), first)  # untouched

    args = ["--days", "2", "--start", "2024-03-01", "--seed", "2", "--out", str(out), "--force"]
    code, _ = _run(*args)
    assert code == 0
    assert not pd.read_parquet(out)["transaction_id"].equals(first["transaction_id"])


# 2 days ahead at least: a midnight passing between the test and the command leaves it
# ahead by one, still refused
@pytest.mark.parametrize("days_ahead", [2, 30])
def test_a_history_running_into_today_or_later_is_refused(tmp_path: Path, days_ahead: int) -> None:
    """Today's payments are not all made yet: the default history ends yesterday."""
    today = datetime.now(UTC).date()
    start = today - timedelta(days=3) + timedelta(days=days_ahead)
    out = tmp_path / "history.parquet"
    code, output = _run("--days", "3", "--start", start.isoformat(), "--out", str(out))
    assert code == 1
    latest = [today - timedelta(days=3), today - timedelta(days=2)]
    assert any(f"choose --start between 1990-01-01 and {day}" in output for day in latest)
    assert not out.exists()


def test_a_history_ending_yesterday_is_written(tmp_path: Path) -> None:
    start = datetime.now(UTC).date() - timedelta(days=3)
    out = tmp_path / "history.parquet"
    code, output = _run("--days", "3", "--start", start.isoformat(), "--out", str(out))
    assert code == 0, output
    assert pd.read_parquet(out)["event_time"].max() < datetime.now(UTC)


def test_a_start_before_1990_is_refused(tmp_path: Path) -> None:
    code, output = _run("--days", "3", "--start", "1969-12-30", "--out", str(tmp_path / "h.pq"))
    assert code == 1
    assert "--start 1969-12-30 with --days 3 would end on 1970-01-01" in output


def test_more_than_ten_years_of_days_is_a_usage_error(tmp_path: Path) -> None:
    code, output = _run("--days", "3651", "--out", str(tmp_path / "h.parquet"))
    assert code == 2
    assert "Invalid value for '--days'" in output


@pytest.mark.parametrize(
    ("layout", "prepare", "message"),
    [
        ("parquet", "dir", "is a directory; give --out a Parquet file's path"),
        ("archive", "file", "exists and is not an archive or an empty directory"),
        ("archive", "full", "exists and is not an archive or an empty directory"),
        ("archive", "force", "--force replaces a Parquet file; an archive is never replaced"),
        ("parquet", "parent_is_a_file", "(not a directory); choose another"),
        ("archive", "symlink", "is a symbolic link; give the path it points to"),
    ],
)
def test_an_out_it_cannot_write_is_refused_before_simulating(
    tmp_path: Path, layout: str, prepare: str, message: str
) -> None:
    out = tmp_path / "out"
    extra = []
    if prepare == "dir":
        out.mkdir()
    elif prepare == "file":
        out.write_text("precious")
    elif prepare == "full":
        out.mkdir()
        (out / "notes.txt").write_text("precious")
    elif prepare == "parent_is_a_file":
        (tmp_path / "file").write_text("precious")
        out = tmp_path / "file" / "h.parquet"
    elif prepare == "symlink":
        (tmp_path / "empty").mkdir()
        out.symlink_to(tmp_path / "empty")
    else:
        extra = ["--force"]
    result = CliRunner().invoke(
        cli, [*SMALL, "--days", "2000", "--format", layout, "--out", str(out), *extra]
    )
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "simulating days" not in result.output  # refused first, not after the work


def test_force_is_refused_with_an_archive_even_an_existing_one(tmp_path: Path) -> None:
    out = tmp_path / "archive"
    code, _ = _run("--days", "2", "--format", "archive", "--out", str(out))
    assert code == 0
    code, output = _run("--days", "2", "--format", "archive", "--out", str(out), "--force")
    assert code == 2
    assert "an archive is never replaced" in output


def test_missing_parent_directories_are_made(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "history.parquet"
    code, output = _run("--days", "2", "--start", "2024-03-01", "--out", str(out))
    assert code == 0, output
    assert len(pd.read_parquet(out)) > 0


@pytest.mark.parametrize("name", ["history.csv", "history.csv.gz", "history.json"])
def test_a_file_named_for_another_format_is_refused_before_simulating(
    tmp_path: Path, name: str
) -> None:
    """`--out h.csv` held Parquet, and training on it then advised saving it as UTF-8."""
    code, output = _run("--days", "2", "--start", "2024-03-01", "--out", str(tmp_path / name))
    assert code == 2
    assert "it is written as Parquet; name the file history.parquet" in output
    assert list(tmp_path.iterdir()) == []
