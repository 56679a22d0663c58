"""A scheduled tick skips only a run that would repeat the last one: what it reads, where
its windows fall, and the champion it is judged against must all be as they were."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import batch_training.champion
import batch_training.pipeline
from batch_training.pipeline import PipelineOptions
from batch_training.registry import ModelRegistry
from batch_training.run_log import RunLog
from batch_training.train import TrainingConfig
from batch_training.unchanged import UnchangedRuns, read_digest
from feature_store import CORE_FEATURE_SET, EXTENDED_FEATURE_SET
from feature_store.archive import seed_archive
from fraud_cli.train_cmd import _train_once
from fraud_cli.train_history import ReadSettings
from simulator.config import SimulationConfig
from simulator.generator import TrafficGenerator

_OPTIONS = PipelineOptions(
    feature_set=CORE_FEATURE_SET,
    train_days=4,
    delay_days=2,
    test_days=4,
    training=TrainingConfig(seed=3, max_rounds=40),
)
_READ = ReadSettings("native", 10**8)


class _Schedule:
    """The ticks of one ``fraud train --every --json`` process, run in this one."""

    def __init__(self, history: Path, registry: Path, capsys: pytest.CaptureFixture[str]):
        self.history, self.registry, self.capsys = history, registry, capsys
        self.unchanged = UnchangedRuns()

    def tick(self, options: PipelineOptions = _OPTIONS) -> dict[str, Any]:
        _train_once(
            self.history, self.registry, options, _READ, True, threading.Event(), self.unchanged
        )
        line: dict[str, Any] = json.loads(self.capsys.readouterr().out.strip().splitlines()[-1])
        return line


@pytest.fixture
def history_file(small_history: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "history.parquet"
    small_history.to_parquet(path)
    return path


def test_a_tick_with_nothing_new_is_skipped_and_recorded(
    small_history: pd.DataFrame,
    history_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    schedule = _Schedule(history_file, tmp_path / "registry", capsys)
    assert schedule.tick()["model_version"] == 1
    skipped = schedule.tick()
    assert skipped["outcome"] == "unchanged"
    assert (skipped["model_version"], skipped["repeated_version"]) == (None, 1)
    last = small_history["event_time"].max()
    assert f"the history (last payment {last:%Y-%m-%d %H:%M} UTC)" in skipped["reason"]
    records = RunLog(tmp_path / "registry").records()
    assert [(r.outcome, r.version) for r in records] == [("promoted", 1), ("unchanged", None)]
    # another process (a restarted scheduler) trains once
    assert _Schedule(history_file, tmp_path / "registry", capsys).tick()["model_version"] == 2


def test_a_window_that_moved_past_a_day_without_payments_trains_again(
    small_history: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After an archiver outage the rows read can stay the same while the latest window
    moves a day: the split differs, and so does the model."""
    archive = tmp_path / "archive"
    seed_archive(small_history, archive)
    shutil.rmtree(archive / "transactions" / "day=2025-03-11")  # the outage
    schedule = _Schedule(archive, tmp_path / "registry", capsys)
    assert schedule.tick()["model_version"] == 1
    # a payment on a new day moves the latest window by one day, onto the empty one
    new_day = small_history[small_history["event_time"].dt.date == date(2025, 3, 18)].head(1)
    moved = new_day.assign(
        transaction_id="new-payment", event_time=pd.Timestamp("2025-03-19T01:00:00Z")
    )
    seed_archive(moved, tmp_path / "more")
    shutil.copytree(
        tmp_path / "more" / "transactions" / "day=2025-03-19",
        archive / "transactions" / "day=2025-03-19",
    )
    retrained = schedule.tick()
    assert retrained["model_version"] == 2
    registry = ModelRegistry(tmp_path / "registry")
    windows = [registry.metadata(v).training_window["split_test"] for v in (1, 2)]
    assert windows[0] != windows[1]
    assert schedule.tick()["outcome"] == "unchanged"


def test_a_run_promoted_over_a_champion_reaching_further_back_is_skipped_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `core` run re-scores an `extended` champion on days its own features do not
    need; once it replaced that champion they are not read, and nothing else changed."""
    generator = TrafficGenerator(SimulationConfig(cards=300, merchants=30, seed=5))
    archive = tmp_path / "archive"
    seed_archive(generator.history(start=datetime(2026, 5, 1, tzinfo=UTC), days=70), archive)
    schedule = _Schedule(archive, tmp_path / "registry", capsys)
    weak = TrainingConfig(seed=3, max_rounds=1)
    assert schedule.tick(replace(_OPTIONS, feature_set=EXTENDED_FEATURE_SET, training=weak))[
        "promoted"
    ]
    over_extended = schedule.tick()
    assert over_extended["promoted"], over_extended["gate"]
    registry = ModelRegistry(tmp_path / "registry")
    # the champion's 90 days reach the archive's first day; the candidate's start later
    assert registry.metadata(2).extra["history_first_day_read"] < "2026-05-01"
    assert schedule.tick()["outcome"] == "unchanged"
    assert registry.versions() == [1, 2]


@pytest.mark.parametrize(
    ("rolled_back", "moved", "champion"),
    [(False, "from v1 to v2", 2), (True, "from v2 to v1", 1)],
    ids=["promoted meanwhile", "tried and rolled back meanwhile"],
)
def test_a_champion_moved_during_the_run_is_compared_at_the_next_tick(
    history_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    registry_edits: Any,
    rolled_back: bool,
    moved: str,
    champion: int,
) -> None:
    """The candidate stays a challenger; the champion there is now was never compared with
    it, even when it is the one from before the run (an operator tried a copy, v2, while
    the candidate was judged against it, and rolled it back)."""
    schedule = _Schedule(history_file, tmp_path / "registry", capsys)
    weak = replace(_OPTIONS, training=TrainingConfig(seed=3, max_rounds=1))
    assert schedule.tick(weak)["model_version"] == 1
    judge = batch_training.champion.judge_candidate

    def operator_acts(registry: ModelRegistry, *args: Any, **kwargs: Any) -> Any:
        if rolled_back:
            registry.promote(registry_edits.register_copy(registry), forced=True)
        verdict = judge(registry, *args, **kwargs)
        if rolled_back:
            registry.rollback()
        else:
            registry.promote(registry_edits.register_copy(registry), forced=True)
        return verdict

    monkeypatch.setattr(batch_training.pipeline, "judge_candidate", operator_acts)
    candidate = schedule.tick()
    assert (candidate["model_version"], candidate["promoted"]) == (3, False)
    assert f"the champion moved {moved}" in candidate["gate"]
    monkeypatch.setattr(batch_training.pipeline, "judge_candidate", judge)
    again = schedule.tick()
    assert (again["model_version"], again["champion_version"]) == (4, champion)
    assert schedule.tick()["outcome"] == "unchanged"


def test_a_rolled_back_candidate_over_an_unservable_champion_is_not_retrained_each_tick(
    history_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The champion cannot be served, and the gate declines the candidate as the model
    an operator rolled back: no run replaces the champion, so the skip must not wait
    for one."""
    schedule = _Schedule(history_file, tmp_path / "registry", capsys)
    assert schedule.tick(replace(_OPTIONS, training=TrainingConfig(seed=3, max_rounds=1)))[
        "promoted"
    ]
    assert schedule.tick()["promoted"]  # v2
    registry = ModelRegistry(tmp_path / "registry")
    registry.rollback()
    model = registry.version_dir(1) / "model.ubj"
    model.write_bytes(model.read_bytes() + b" ")
    ticks = [schedule.tick() for _ in range(3)]
    assert [(t["outcome"], t["model_version"]) for t in ticks] == [
        ("challenger", 3),
        ("unchanged", None),
        ("unchanged", None),
    ]
    assert "the same model as v2, which an operator rolled back" in ticks[0]["gate"]


def test_a_failure_to_note_the_inputs_does_not_fail_the_run(
    history_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(UnchangedRuns, "remember", broken)
    schedule = _Schedule(history_file, tmp_path / "registry", capsys)
    assert (schedule.tick()["outcome"], schedule.tick()["outcome"]) == ("promoted", "challenger")
    assert "the next tick trains" in caplog.text
    assert [r.outcome for r in RunLog(tmp_path / "registry").records()] == [
        "promoted",
        "challenger",
    ]


def test_a_history_arrow_cannot_hold_trains_every_tick(
    small_history: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CSV column of integers beyond 64 bits trains; the digest must not fail its ticks."""
    history = tmp_path / "history.csv"
    reference = [str(10**24 + i) for i in range(len(small_history))]
    small_history.assign(reference=reference).to_csv(history, index=False)
    schedule = _Schedule(history, tmp_path / "registry", capsys)
    with caplog.at_level(logging.WARNING):
        assert [schedule.tick()["model_version"] for _ in range(2)] == [1, 2]
    assert "cannot digest the history read (OverflowError" in caplog.text


def test_with_no_promote_an_unservable_champion_does_not_retrain_every_tick(
    history_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The next run replaces a champion that cannot be served, unless runs never promote:
    then each tick would register the same challenger."""
    schedule = _Schedule(history_file, tmp_path / "registry", capsys)
    assert schedule.tick()["model_version"] == 1
    model = tmp_path / "registry" / "versions" / "1" / "model.ubj"
    model.write_bytes(model.read_bytes() + b" ")
    no_promote = replace(_OPTIONS, promote=False)
    ticks = [schedule.tick(no_promote) for _ in range(3)]
    assert [(t["outcome"], t["model_version"]) for t in ticks] == [
        ("challenger", 2),
        ("unchanged", None),
        ("unchanged", None),
    ]


def test_the_read_digest_changes_with_any_value_and_not_with_a_copy() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": ["t1", "t2", "t3"],
            "amount": [1.0, 2.0, 3.0],
            "label_time": _times(None, "2025-03-01", None),
            "scenario": pd.Categorical(["a", "b", "a"]),
        }
    ).astype({"transaction_id": "str"})
    digest = read_digest(frame)
    assert read_digest(frame.copy()) == digest
    assert read_digest(pd.concat([frame.iloc[:1], frame.iloc[1:]])) == digest
    changed = [
        frame.assign(amount=[1.0, 2.0, 3.5]),
        frame.assign(transaction_id=["t1", "t2", "t4"]),
        frame.assign(label_time=_times(None, "2025-03-01", "2025-03-02")),
        frame.assign(scenario=pd.Categorical(["a", "c", "a"])),  # the same codes
        frame.iloc[:2],
        frame.rename(columns={"amount": "value"}),
    ]
    assert len({read_digest(f) for f in changed} | {digest}) == len(changed) + 1


def test_the_rows_read_for_the_champion_only_are_digested_apart(tmp_path: Path) -> None:
    """Rows before the candidate's first day change only ``champion_history``; rows out of
    time order all count as the candidate's."""
    frame = pd.DataFrame(
        {"event_time": _times("2025-03-01", "2025-03-02", "2025-03-03"), "amount": [1.0, 2, 3]}
    )
    registry = ModelRegistry(tmp_path / "registry")

    def inputs(rows: pd.DataFrame, since: date | None = date(2025, 3, 2)) -> Any:
        runs = UnchangedRuns()
        return runs.inputs(
            _OPTIONS, rows, candidate_since=since, until=None, last_event_ms=None,
            registry=registry,
        )  # fmt: skip

    split = inputs(frame)
    assert (split.history, split.champion_history) == (
        read_digest(frame.iloc[1:]),
        read_digest(frame.iloc[:1]),
    )
    older = inputs(frame.assign(amount=[1.5, 2, 3]))
    assert (older.history, older.champion_history != split.champion_history) == (
        split.history,
        True,
    )
    assert inputs(frame, since=date(2025, 3, 1)).champion_history is None
    assert inputs(frame, since=None).history == read_digest(frame)
    shuffled = frame.iloc[[1, 0, 2]]
    assert inputs(shuffled).champion_history is None
    assert inputs(shuffled).history == read_digest(shuffled)


def _times(*days: str | None) -> pd.Series:
    return pd.Series([pd.Timestamp(d, tz="UTC") if d else pd.NaT for d in days])
