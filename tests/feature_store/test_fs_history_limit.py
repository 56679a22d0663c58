"""A history too large for memory is refused before it is loaded, with the knob to turn."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from feature_store import CORE_FEATURE_SET, HistoryTooLargeError, read_history
from feature_store.archive import archive_day_rows, first_day_within, seed_archive
from feature_store.online import MemoryOnlineStore
from fraud_cli.main import cli
from simulator.config import SimulationConfig
from simulator.generator import TrafficGenerator
from stream.app import _warm
from stream.settings import StreamSettings


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    generator = TrafficGenerator(SimulationConfig(cards=150, merchants=15, seed=5))
    history = generator.history(start=datetime(2026, 10, 1, tzinfo=UTC), days=30)
    where = tmp_path_factory.mktemp("sources")
    history.to_parquet(where / "history.parquet")
    history.to_csv(where / "history.csv", index=False)
    by_day = history.assign(day=history["event_time"].dt.strftime("%Y-%m-%d"))
    by_day.to_parquet(where / "by-day", partition_cols=["day"])
    seed_archive(history, where / "archive")
    return {
        "parquet": where / "history.parquet",
        "csv": where / "history.csv",
        "by-day": where / "by-day",
        "archive": where / "archive",
    }


@pytest.mark.parametrize("kind", ["parquet", "csv", "by-day", "archive"])
def test_a_history_over_the_limit_is_refused_and_one_at_it_is_read(
    sources: dict[str, Path], kind: str
) -> None:
    """The rows counted (from the Parquet footers) are the rows a read loads."""
    since = date(2026, 10, 20) if kind == "archive" else None
    rows = len(read_history(sources[kind], since=since))
    assert len(read_history(sources[kind], since=since, max_rows=rows)) == rows
    where = " from 2026-10-20 on" if since else ""
    with pytest.raises(HistoryTooLargeError, match=f"holds {rows:,} rows{where}, more than the "
                       f"limit of {rows - 1:,}"):  # fmt: skip
        read_history(sources[kind], since=since, max_rows=rows - 1)


def _refused(result: Result) -> str:
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception  # a message, not a crash
    return " ".join(result.output.split())


def test_the_trainer_refuses_a_history_over_its_limit_and_says_what_to_change(
    sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ["--registry", str(tmp_path / "registry")]
    whole = ["train", "--history", str(sources["parquet"]), *registry]
    output = _refused(CliRunner().invoke(cli, [*whole, "--max-rows", "1000"]))
    assert "more than the limit of 1,000" in output
    assert "a file is read whole: train on a `fraud archive` directory" in output
    assert "raise --max-rows (FRAUD_MAX_HISTORY_ROWS)" in output
    assert not (tmp_path / "registry" / "versions").exists()  # nothing registered
    monkeypatch.setenv("FRAUD_MAX_HISTORY_ROWS", "2000")
    assert "more than the limit of 2,000" in _refused(CliRunner().invoke(cli, whole))


def test_a_refusal_names_the_champion_when_its_features_set_the_read(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    archive = ["train", "--history", str(sources["archive"]), "--registry", str(tmp_path)]
    trained = CliRunner().invoke(cli, [*archive, "--feature-set", "extended"])
    assert trained.exit_code == 0, trained.output
    output = _refused(CliRunner().invoke(cli, [*archive, "--max-rows", "1000"]))
    assert "champion v1's extended features set how far back it reads" in output
    assert "a champion whose features reach less far back" in output


@pytest.mark.parametrize(
    ("max_rows", "first"),
    [(30, 1), (29, 2), (20, 2), (10, 3), (9, None)],
)
def test_the_latest_days_that_fit_are_chosen(max_rows: int, first: int | None) -> None:
    rows = {date(2026, 1, 1): 10, date(2026, 1, 2): 10, date(2026, 1, 3): 10}
    expected = None if first is None else date(2026, 1, first)
    assert first_day_within(rows, date(2026, 1, 1), max_rows) == expected
    assert first_day_within(rows, date(2026, 1, 4), 0) == date(2026, 1, 4)  # nothing to read


def test_a_warm_up_over_its_limit_replays_the_latest_archive_days_that_fit(
    sources: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A worker short of history serves; one killed for memory does not."""
    day_rows = archive_day_rows(sources["archive"])
    last_two = sum(day_rows[d] for d in sorted(day_rows)[-2:])
    settings = StreamSettings(warm_max_rows=last_two + 1)
    with caplog.at_level(logging.WARNING, logger="stream.app"):
        _warm(settings, sources["archive"], MemoryOnlineStore(), CORE_FEATURE_SET)
    refused, warmed = (r.getMessage() for r in caplog.records)
    assert f"more than FRAUD_WARM_MAX_ROWS={last_two + 1}; warming from 2026-10-29" in refused
    assert warmed.startswith(f"warmed the online store with {last_two} history rows")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stream.app"):
        _warm(StreamSettings(warm_max_rows=1), sources["archive"], MemoryOnlineStore(),
              CORE_FEATURE_SET)  # fmt: skip
    (cold,) = (r.getMessage() for r in caplog.records)
    assert "warming from nothing (starting cold)" in cold


def test_a_warm_up_file_over_its_limit_is_refused(sources: dict[str, Path]) -> None:
    """A file is read whole: only the operator can choose what to drop."""
    with pytest.raises(HistoryTooLargeError, match="a file is read whole: warm from one of"):
        _warm(StreamSettings(warm_max_rows=100), sources["parquet"], MemoryOnlineStore(),
              CORE_FEATURE_SET)  # fmt: skip
