"""A history too large for memory is refused before it is loaded, with the knob to turn."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from feature_store import CORE_FEATURE_SET, HistoryTooLargeError, read_history
from feature_store.archive import read_archive, seed_archive
from feature_store.history import history_rows
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
    seed_archive(history, where / "archive")
    return {
        "parquet": where / "history.parquet",
        "csv": where / "history.csv",
        "archive": where / "archive",
    }


def test_rows_are_counted_from_the_footers_as_a_read_would_load_them(
    sources: dict[str, Path],
) -> None:
    since = date(2026, 10, 20)
    assert history_rows(sources["archive"], since=since) == len(
        read_archive(sources["archive"], since=since)
    )
    assert history_rows(sources["parquet"]) == len(pd.read_parquet(sources["parquet"]))
    assert history_rows(sources["csv"]) is None  # counted once read


@pytest.mark.parametrize("kind", ["parquet", "csv", "archive"])
def test_a_history_over_the_limit_is_refused_and_one_at_it_is_read(
    sources: dict[str, Path], kind: str
) -> None:
    since = date(2026, 10, 20) if kind == "archive" else None
    rows = len(read_history(sources[kind], since=since))
    assert len(read_history(sources[kind], since=since, max_rows=rows)) == rows
    where = " from 2026-10-20 on" if since else ""
    with pytest.raises(HistoryTooLargeError, match=f"holds {rows:,} rows{where}, more than the "
                       f"limit of {rows - 1:,}"):  # fmt: skip
        read_history(sources[kind], since=since, max_rows=rows - 1)


def test_the_trainer_refuses_a_history_over_its_limit_in_one_line(
    sources: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ["--registry", str(tmp_path / "registry")]
    refused = CliRunner().invoke(
        cli, ["train", "--history", str(sources["parquet"]), *registry, "--max-rows", "1000"]
    )
    assert refused.exit_code == 1
    assert "more than the limit of 1,000" in refused.output
    assert "(--max-rows, FRAUD_MAX_HISTORY_ROWS)" in refused.output
    assert "Traceback" not in refused.output
    assert not (tmp_path / "registry" / "versions").exists()  # nothing registered
    monkeypatch.setenv("FRAUD_MAX_HISTORY_ROWS", "2000")
    from_env = CliRunner().invoke(cli, ["train", "--history", str(sources["parquet"]), *registry])
    assert from_env.exit_code == 1
    assert "more than the limit of 2,000" in from_env.output


def test_the_worker_refuses_a_warm_up_history_over_its_limit(sources: dict[str, Path]) -> None:
    store = MemoryOnlineStore()
    settings = StreamSettings(warm_max_rows=100)
    with pytest.raises(HistoryTooLargeError, match=r"limit of 100 .*\(FRAUD_WARM_MAX_ROWS\)"):
        _warm(settings, sources["archive"], store, CORE_FEATURE_SET)
