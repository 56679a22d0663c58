"""The promotion gate both ways, the models commands, the schedule lock, train --json,
and what fraud train shows in a terminal."""

from __future__ import annotations

import errno
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from batch_training.errors import (
    OutputWriteError,
    PromotionFailedError,
    TrainingConfigError,
    TrainingDataError,
)
from batch_training.gate import promotion_gate
from batch_training.pipeline import PipelineOptions, run_training
from batch_training.registry import ModelRegistry
from batch_training.run_log import RunLog
from batch_training.schedule import RunCancelled, check_stop, run_every
from batch_training.train import TrainingConfig
from feature_store import CORE_FEATURE_SET
from feature_store.locking import exclusive
from fraud_cli.main import cli
from tests.conftest import WaitUntil, rewrite_metadata


def _metrics(ap: float, cp: float) -> dict[str, float]:
    return {"average_precision": ap, "card_precision_at_100": cp}


def test_gate_promotes_a_better_candidate() -> None:
    decision = promotion_gate(_metrics(0.70, 0.30), _metrics(0.65, 0.305), cp_tolerance=0.01)
    assert decision.promote
    assert "0.7000 > champion's 0.6500" in decision.reason


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        (_metrics(0.65, 0.40), "does not beat"),
        (_metrics(0.64, 0.40), "does not beat"),
        (_metrics(0.70, 0.28), "fell more than 0.01"),
    ],
)
def test_gate_keeps_the_champion(candidate: dict[str, float], why: str) -> None:
    decision = promotion_gate(candidate, _metrics(0.65, 0.30), cp_tolerance=0.01)
    assert not decision.promote
    assert why in decision.reason


def test_gate_reasons_show_the_digits_that_tell_the_numbers_apart() -> None:
    kept = promotion_gate(_metrics(0.751051, 0.30), _metrics(0.751060, 0.30), cp_tolerance=0.01)
    assert "average precision 0.751051 does not beat the champion's 0.751060" in kept.reason
    assert "card precision@100 0.3000 vs the champion's 0.3000" in kept.reason
    passed = promotion_gate(_metrics(0.751064, 0.3), _metrics(0.751056, 0.3), cp_tolerance=0.01)
    assert passed.promote
    assert "0.751064 > champion's 0.751056" in passed.reason
    tiny = promotion_gate(_metrics(0.75105100001, 0.3), _metrics(0.751051, 0.3), cp_tolerance=0)
    assert "0.751051000010 > champion's 0.751051000000" in tiny.reason
    # the same share computed two ways (6/100 as a mean of days) is the same number
    noise = promotion_gate(
        _metrics(0.7, 0.05999999999999999), _metrics(0.7, 0.060000000000000005), cp_tolerance=0.01
    )
    assert not noise.promote
    assert "card precision@100 0.0600 vs the champion's 0.0600, not lower" in noise.reason
    # a rise is not called a fall within the tolerance; a small fall is
    rose = promotion_gate(_metrics(0.71, 0.31), _metrics(0.7, 0.3), cp_tolerance=0.01)
    assert "card precision@100 0.3100 vs the champion's 0.3000, not lower" in rose.reason
    fell = promotion_gate(_metrics(0.71, 0.295), _metrics(0.7, 0.3), cp_tolerance=0.01)
    assert "0.2950 vs the champion's 0.3000, within the 0.01 it may fall" in fell.reason
    # when AP already fails, the reason still gives the other check's verdict
    both = promotion_gate(_metrics(0.69, 0.28), _metrics(0.7, 0.3), cp_tolerance=0.01)
    assert "0.2800 vs the champion's 0.3000, more than the 0.01 it may fall" in both.reason
    assert "card precision@100 0.3000 vs the champion's 0.3000" in passed.reason


def test_first_model_is_promoted() -> None:
    assert promotion_gate(_metrics(0.1, 0.1), None, cp_tolerance=0.01).promote


def test_schedule_lock_skips_a_tick_while_another_run_holds_it(tmp_path: Path) -> None:
    lock = tmp_path / ".train.lock"
    ran: list[int] = []
    stop = threading.Event()

    def job() -> None:
        ran.append(1)

    with exclusive(lock) as mine:
        assert mine
        with exclusive(lock) as second:
            assert not second  # the same lock cannot be taken twice
        stop.set()
        # the only tick happens while the lock is held: skipped, nothing runs
        assert run_every(3600, job, lock_path=lock, stop=stop) == 0
    assert ran == []
    stop.clear()
    runs: list[int] = []

    def once() -> None:
        runs.append(1)
        stop.set()

    assert run_every(3600, once, lock_path=lock, stop=stop) == 1


def test_train_json_then_models_commands(small_history: pd.DataFrame, tmp_path: Path) -> None:
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    registry = tmp_path / "registry"
    runner = CliRunner()
    args = [
        "train",
        "--history",
        str(history),
        "--registry",
        str(registry),
        "--train-days",
        "4",
        "--delay-days",
        "2",
        "--test-days",
        "4",
        "--json",
    ]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output.strip().splitlines()[-1])
    assert summary["model_version"] == 1
    assert summary["promoted"] is True
    assert set(summary["metrics"]) == {
        "roc_auc",
        "average_precision",
        "card_precision_at_100",
        "recall_at_alert_rate",
    }
    assert {"thresholds", "train_rows", "test_rows", "seconds"} <= set(summary)
    # where the time went, in stage order: the stages after reading make up the run
    stages = summary["stage_seconds"]
    assert list(stages) == ["read", "features", "training", "gate", "report"]
    assert sum(stages.values()) - stages["read"] == pytest.approx(summary["seconds"], abs=0.5)
    # the same data and seed again: not better on the same window, so v2 stays a challenger
    second = json.loads(runner.invoke(cli, args).output.strip().splitlines()[-1])
    assert second["model_version"] == 2
    assert second["promoted"] is False
    assert "does not beat" in second["gate"]
    assert (summary["champion_version"], second["champion_version"]) == (None, 1)
    # the champion, re-scored on v2's window with its own thresholds, is the same model:
    # the same metrics, and the same cost of its decisions
    v2 = ModelRegistry(registry).load(2).metadata
    champion = v2.extra["gate"]["champion_metrics"]
    assert set(champion) == set(v2.metrics) - {"validation_average_precision"}
    assert champion == {k: v2.metrics[k] for k in champion}
    models = ["models", "--registry", str(registry)]
    listing = runner.invoke(cli, [*models, "list"])
    assert listing.exit_code == 0
    assert "*" in listing.output.splitlines()[1]  # v1 is the champion
    v1 = ModelRegistry(registry).metadata(1)
    assert f"core v{v1.feature_set_version}" in listing.output.splitlines()[1]
    assert str(v1.training_window["split_train"]) in listing.output.splitlines()[1]
    refused = runner.invoke(cli, [*models, "promote", "2"])
    assert refused.exit_code != 0
    assert "--force" in refused.output
    assert runner.invoke(cli, [*models, "promote", "2", "--force"]).exit_code == 0
    assert ModelRegistry(registry).champion_version() == 2
    # undoing a forced promotion needs no --force
    assert runner.invoke(cli, [*models, "rollback"]).exit_code == 0
    assert ModelRegistry(registry).champion_version() == 1
    refused = runner.invoke(cli, [*models, "rollback"])  # said before asking for --force
    assert refused.exit_code != 0
    assert "has no earlier champion to roll back to (champion: v1)" in refused.output
    ModelRegistry(registry).promote(2)  # as if v2 had passed the gate over v1
    refused = runner.invoke(cli, [*models, "rollback"])
    assert refused.exit_code != 0
    assert "the champion v2 passed the promotion gate" in refused.output
    # --force on the champion itself would mark it forced, and a rollback free of the gate
    again = runner.invoke(cli, [*models, "promote", "2", "--force"])
    assert again.exit_code == 0
    assert "v2 is already the champion; nothing changed" in again.output
    assert not ModelRegistry(registry).champion_was_forced()
    shown = json.loads(runner.invoke(cli, [*models, "show", "1"]).output)
    assert shown["version"] == 1
    assert len(shown["model_sha256"]) == 64


def _train_small(history: pd.DataFrame, tmp_path: Path, name: str, *args: str) -> Any:
    """``fraud train --json`` on a 4/2/4-day split of ``history``: its JSON summary."""
    path = tmp_path / "history.parquet"
    if not path.exists():
        history.to_parquet(path)
    where = ["--history", str(path), "--registry", str(tmp_path / name)]
    window = ["--train-days", "4", "--delay-days", "2", "--test-days", "4", "--json"]
    result = CliRunner().invoke(cli, ["train", *where, *window, *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_a_review_capacity_of_zero_sends_nothing_to_review(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    runs = {
        None: _train_small(small_history, tmp_path, "unlimited"),
        0: _train_small(small_history, tmp_path, "none", "--review-capacity", "0"),
    }
    unlimited, none = runs[None]["thresholds"], runs[0]["thresholds"]
    assert unlimited["review"] < unlimited["decline"]  # left alone, reviewing pays here
    assert none["review"] == none["decline"]  # no band between them: no reviews
    report = Path(runs[0]["report"]).read_text()
    assert "capacity of 0 reviews a day there; on the test window 0.0 reviews a day" in report
    assert "Thresholds: never review (the review threshold, " in report


def test_a_better_candidate_replaces_the_champion_judged_on_its_window(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """End to end, the gate's promoting side: a `handbook`-set champion, then a `core`
    candidate scored higher on the same test window, re-scoring the champion with its
    own features (the candidate's set lacks some of them)."""
    first = _train_small(small_history, tmp_path, "registry", "--feature-set", "handbook")
    second = _train_small(small_history, tmp_path, "registry", "--feature-set", "core")
    registry = ModelRegistry(tmp_path / "registry")
    champion = registry.metadata(2).extra["gate"]["champion_metrics"]
    # the champion re-scored on the same window is the champion as it was measured
    assert champion["average_precision"] == pytest.approx(
        first["metrics"]["average_precision"], abs=5e-5
    )
    assert second["metrics"]["average_precision"] > champion["average_precision"]
    assert second["promoted"] is True, second["gate"]
    assert registry.champion_version() == 2
    assert registry.previous_champions() == [1]


def test_no_promote_registers_a_passing_model_and_says_why_it_does_not_serve(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    summary = _train_small(small_history, tmp_path, "registry", "--no-promote")
    registry = ModelRegistry(tmp_path / "registry")
    assert summary["promoted"] is False
    assert registry.champion_version() is None
    assert "passes; but this run only registers (--no-promote)" in summary["gate"]
    report = Path(summary["report"]).read_text()
    assert "Model v1: registered as a challenger" in report
    assert "(--no-promote)" in report
    # it passed the gate against no champion: promoting it needs no --force
    models = ["models", "--registry", str(tmp_path / "registry")]
    second = _train_small(small_history, tmp_path, "registry", "--no-promote", "--seed", "9")
    assert CliRunner().invoke(cli, [*models, "promote", "1"]).exit_code == 0
    assert registry.champion_version() == 1
    # --registry after the subcommand too, as `fraud train` takes it
    listed = CliRunner().invoke(cli, ["models", "list", "--registry", str(registry.root)])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines()[1].startswith("*       1")
    # one judged against no champion, with v1 serving now: the refusal says so, and does
    # not quote its gate's advice to promote it
    refused = CliRunner().invoke(cli, [*models, "promote", str(second["model_version"])])
    assert refused.exit_code == 1
    assert (
        "v2 passed the gate against no champion, not against the champion there is now (v1): "
        "add --force to promote it anyway" in refused.output
    )


def test_the_alert_rate_sets_the_share_of_payments_alerted_on(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    summary = _train_small(small_history, tmp_path, "registry", "--alert-rate", "1")
    # every payment alerted on: every fraud among them, which 0.5 % of them do not hold
    assert summary["metrics"]["recall_at_alert_rate"] == 1.0
    assert summary["test_frauds"] > 0.005 * summary["test_rows"]
    report = Path(summary["report"]).read_text()
    assert "recall at a 100 % alert rate" in report


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "--train-start", "2001-01-01"],
            "choose fewer days or --folds, or another --train-start",
        ),
        (["train", "--folds", "500", "--test-days", "3000"], "span 1,500,014 days"),
        (["train", "--train-start", "9999-12-31"], "--train-start 9999-12-31 lies outside"),
        (["train", "--train-start", "0001-01-05"], "--train-start 0001-01-05 lies outside"),
        (["train", "--review-fee", "-5"], "review_fee=-5.0 must be a finite amount >= 0"),
        (["train", "--decline-fee", "nan"], "decline_fee=nan must be a finite amount >= 0"),
        (["train", "--alert-rate", "0"], "alert_rate=0.0 must lie in (0, 1]"),
        (["train", "--review-capacity", "-1"], "review_capacity=-1 reviews a day must be"),
        (["train", "--cp-tolerance", "nan"], "cp_tolerance=nan must be between 0 and 1"),
        # it turned the CP@100 check off
        (["train", "--cp-tolerance", "inf"], "cp_tolerance=inf must be between 0 and 1"),
        (["models", "show", "9"], "model version 9 does not exist in"),
        (["models", "rollback"], "has no champion to roll back"),
        (["models", "--registry", "/nonexistent/registry", "list"], "no registry at /nonexistent"),
    ],
)
def test_mistakes_end_with_one_line_saying_what_to_fix(
    small_history: pd.DataFrame, tmp_path: Path, args: list[str], message: str
) -> None:
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    (tmp_path / "registry").mkdir()
    registry = str(tmp_path / "registry")
    where = ["--history", str(history), "--registry", registry]
    full = [*args, *where] if args[0] == "train" else [args[0], "--registry", registry, *args[1:]]
    result = CliRunner().invoke(cli, full)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "args",
    [
        ["--train-days", "100000000000"],
        ["--test-days", "100000000"],
        ["--label-delay-days", "100000000"],
        # usage errors, not the library's checks (which quote its names, and seconds)
        ["--label-delay-days", "-1"],
        ["--folds", "0"],
        ["--delay-days", "-1"],
        ["--train-days", "0"],
        ["--test-days", "0"],
        ["--folds", "1000000000000"],
        ["--seed", "99999999999999999999"],
    ],
)
def test_numbers_beyond_what_dates_and_xgboost_hold_are_usage_errors(
    tmp_path: Path, args: list[str]
) -> None:
    """Not an OverflowError traceback (or an XGBoostError once the run has started)."""
    where = ["--history", str(tmp_path / "h.parquet"), "--registry", str(tmp_path / "r")]
    result = CliRunner().invoke(cli, ["train", *where, *args])
    assert result.exit_code == 2
    assert f"Invalid value for '{args[0]}'" in result.output
    assert isinstance(result.exception, SystemExit), result.exception


def test_a_file_history_with_a_payment_dated_in_the_future_is_refused_naming_it(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """Every scheduled run failed on an empty test window, whose advice (--train-start)
    the schedule refuses: the future payment was never named. An archive's is."""
    history = small_history.copy()
    last = history.index[-1]
    when = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=400)).floor("D")
    history.loc[last, "event_time"] = when
    history.to_parquet(tmp_path / "h.parquet")
    where = ["--history", str(tmp_path / "h.parquet"), "--registry", str(tmp_path / "r")]
    result = CliRunner().invoke(cli, ["train", *where])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Error: {tmp_path / 'h.parquet'} holds 1 payment(s) dated in the future, the latest "
        f"at {when:%Y-%m-%d} 00:00 UTC (e.g. transaction_id {[history.loc[last, 'transaction_id']]}"
        "); drop them or fix their times"
    )
    assert (
        not (tmp_path / "r" / "versions").exists() or ModelRegistry(tmp_path / "r").versions() == []
    )


def test_an_unreadable_champion_pointer_fails_the_run_before_it_reads_the_history(
    tmp_path: Path,
) -> None:
    """It failed at the gate, after the whole run: minutes at every tick on a large
    history. The history here cannot be read either: the pointer's error comes first."""
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "champion.json").write_text("garbage")
    (tmp_path / "h.parquet").write_text("not parquet")
    where = ["--history", str(tmp_path / "h.parquet"), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: the champion pointer {tmp_path / 'registry'}"), last
    assert "is unreadable" in last


def test_a_history_that_is_not_parquet_or_csv_is_refused_with_the_fix(tmp_path: Path) -> None:
    history = tmp_path / "passwd"
    history.write_text("root:x:0:0:root:/root:/bin/bash\n")
    where = ["--history", str(history), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: history {str(history)!r} cannot be read (ArrowInvalid: ")
    assert last.endswith(
        "give a Parquet file, a directory of Parquet files, a .csv file or a "
        "`fraud archive` directory"
    )


def test_models_list_shows_a_damaged_version_and_lists_the_others(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    for _ in range(2):
        run_training(small_history, registry=registry, options=_small_options(promote=False))
    rewrite_metadata(registry.version_dir(1), '{"broken')
    models = ["models", "--registry", str(registry.root)]
    listed = CliRunner().invoke(cli, [*models, "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[1].split()[:2] == ["1", "damaged:"]
    assert "metadata.json is unreadable (JSONDecodeError" in lines[1]
    assert lines[2].split()[0] == "2"
    assert "but this run only registers" in lines[2]
    shown = CliRunner().invoke(cli, [*models, "show", "1"])
    assert shown.exit_code == 1
    assert shown.output.startswith("Error: model version 1: ")
    # an altered model file is damaged too, a stray file named like a version is not one,
    # and a champion pointer naming a version that is gone is said
    model_file = registry.version_dir(2) / "model.ubj"
    model_file.write_bytes(model_file.read_bytes() + b" ")
    (registry.root / "versions" / "9").write_text("a copy")
    (registry.root / "champion.json").write_text('{"version": 7}')
    listed = CliRunner().invoke(cli, [*models, "list"])
    assert listed.exit_code == 1, listed.output  # a monitor sees that nothing can serve
    lines = listed.output.splitlines()
    assert [line.split()[:2] for line in lines[1:3]] == [["1", "damaged:"], ["2", "damaged:"]]
    assert "model version 2: sha256 of model.ubj is" in lines[2]
    assert lines[3].startswith("Error: champion.json names v7, which is not in the registry")
    assert len(lines) == 4
    shown = CliRunner().invoke(cli, [*models, "show", "2"])  # the metadata, then the damage
    assert shown.exit_code == 1
    assert json.loads(shown.output.split("\nError: ")[0])["version"] == 2
    assert "Error: model version 2: sha256 of model.ubj is" in shown.output
    # a pointer damaged by hand: the versions to choose from are still listed
    (registry.root / "champion.json").write_text("{")
    listed = CliRunner().invoke(cli, [*models, "list"])
    assert listed.exit_code == 1
    assert [line.split()[0] for line in listed.output.splitlines()[1:3]] == ["1", "2"]
    assert "Error: the champion pointer" in listed.output


def test_models_list_marks_a_forced_champion_and_whom_each_gate_judged_against(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    run_training(small_history, registry=registry, options=_small_options())
    run_training(small_history, registry=registry, options=_small_options())  # the same model
    models = ["models", "--registry", str(registry.root)]
    (registry.root / "champion.json").unlink()
    refused = CliRunner().invoke(cli, [*models, "promote", "2"])
    assert "(there is no champion; its gate: " in refused.output  # it said "(vNone)"
    registry.promote(1)
    registry.promote(2, forced=True)
    listed = CliRunner().invoke(cli, [*models, "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert " pass: " in lines[1]  # the first model: judged against no champion
    assert lines[2].startswith("*!      2")
    assert " fail vs v1: " in lines[2]
    assert lines[-1] == "*! the champion was promoted past the gate (--force)"


def test_promote_and_rollback_refuse_a_model_no_worker_would_serve_even_forced(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """--force bypasses the gate, not the features: a version whose features this release
    defines differently (e.g. after an upgrade) would stop every worker."""
    registry = ModelRegistry(tmp_path / "registry")
    for _ in range(2):
        run_training(small_history, registry=registry, options=_small_options(promote=False))
    models = ["models", "--registry", str(registry.root)]
    _other_fingerprint(registry.version_dir(2))
    promoted = CliRunner().invoke(cli, [*models, "promote", "2", "--force"])
    assert promoted.exit_code == 1
    assert "Error: model version 2 was trained on feature set 'core'" in promoted.output
    assert registry.champion_version() is None
    for version in (2, 1):  # v2 promoted before the upgrade changed it, then v1
        registry.promote(version, forced=True)
    _other_fingerprint(registry.version_dir(2))
    rolled = CliRunner().invoke(cli, [*models, "rollback", "--force"])
    assert rolled.exit_code == 1
    assert "Error: model version 2 was trained on feature set 'core'" in rolled.output
    assert registry.champion_version() == 1


def test_a_model_rolled_back_is_not_promoted_again_until_promoted_by_hand(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """A schedule trains the same model again on the same data: it would undo the
    operator's rollback at its next tick."""
    registry = ModelRegistry(tmp_path / "registry")
    weak = _small_options(training=TrainingConfig(seed=3, max_rounds=1))
    run_training(small_history, registry=registry, options=weak)
    assert run_training(small_history, registry=registry, options=_small_options()).promoted
    models = ["models", "--registry", str(registry.root)]
    assert CliRunner().invoke(cli, [*models, "rollback", "--force"]).exit_code == 0
    v2 = registry.metadata(2).model_sha256
    assert registry.rolled_back_models() == {v2: 2}
    again = run_training(small_history, registry=registry, options=_small_options())
    assert (again.metadata.version, again.metadata.model_sha256) == (3, v2)
    assert not again.promoted
    assert "the same model as v2, which an operator rolled back" in again.gate.reason
    assert again.gate.passed_comparison  # the report's cost note reads the comparison
    listing = CliRunner().invoke(cli, [*models, "list"]).output.splitlines()
    assert "rolled back; pass vs v1: " in listing[2]
    assert "rolled back; fail vs v1: it is the same model as v2" in listing[3]
    assert "rolled back" not in listing[1]
    # another model (another seed) is judged as any other
    other = _small_options(training=TrainingConfig(seed=4, max_rounds=40))
    assert run_training(small_history, registry=registry, options=other).promoted
    # promoted by hand, past the rollback as past the gate, the operator reinstates it
    refused = CliRunner().invoke(cli, [*models, "promote", "3"])
    assert refused.exit_code == 1
    assert "v3 is the same model as v2, a model an operator rolled back; add --force" in (
        refused.output
    )
    refused = CliRunner().invoke(cli, [*models, "promote", "2"])
    assert "v2 is a model an operator rolled back; add --force" in refused.output
    assert CliRunner().invoke(cli, [*models, "promote", "2", "--force"]).exit_code == 0
    assert registry.rolled_back_models() == {}
    assert registry.champion_was_forced()


def test_a_hand_edited_rolled_back_list_stops_promotion_not_training_or_listing(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    weak = _small_options(training=TrainingConfig(seed=3, max_rounds=1))
    run_training(small_history, registry=registry, options=weak)
    pointer = registry.root / "champion.json"
    pointer.write_text(json.dumps(json.loads(pointer.read_text()) | {"rolled_back": [2]}))
    with pytest.raises(PromotionFailedError, match="rolled_back \\[2\\] is not an object"):
        run_training(small_history, registry=registry, options=_small_options())
    assert registry.versions() == [1, 2]
    listing = CliRunner().invoke(cli, ["models", "--registry", str(registry.root), "list"])
    assert listing.exit_code == 0, listing.output
    assert "warning: the champion pointer's rolled_back [2]" in listing.output
    assert listing.stdout.splitlines()[1].startswith("*")


def test_a_rollback_onto_an_altered_model_says_what_it_refused(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    registry_copy.promote(registry_edits.register_copy(registry_copy), forced=True)
    _altered_model_file(registry_copy.version_dir(1))
    models = ["models", "--registry", str(registry_copy.root)]
    refused = CliRunner().invoke(cli, [*models, "rollback", "--force"])
    assert refused.exit_code == 1
    assert "cannot roll back from v2 to v1, nothing changed: model version 1: sha256" in (
        refused.output
    )
    assert registry_copy.champion_version() == 2


def test_a_history_without_labels_is_refused_with_the_fix(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    history = tmp_path / "unlabelled.parquet"
    small_history.drop(columns=["is_fraud"]).to_parquet(history)
    where = ["--history", str(history), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where])
    assert result.exit_code == 1
    assert "Error: the history has no ['is_fraud'] column(s)" in result.output
    assert "fraud archive" in result.output
    assert not (tmp_path / "registry" / "versions").exists()
    small_history.drop(columns=["amount"]).to_parquet(history)
    no_amount = CliRunner().invoke(cli, ["train", *where])
    assert no_amount.exit_code == 1
    last = no_amount.output.strip().splitlines()[-1]
    assert last.startswith("Error: the history has no ['amount'] column(s)"), last
    assert last.endswith(  # it gave the advice about labels, which were there
        "training needs each payment's transaction_id, event_time, card_id, amount, "
        "is_fraud: add or rename the column(s) (the handbook's raw file: --columns handbook)"
    )


def _terminal_output(process: subprocess.Popen[bytes], controller: int, seconds: float) -> str:
    """All the process writes to its terminal until it exits."""
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    while time.monotonic() < deadline:
        if select.select([controller], [], [], 1.0)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed its end
                chunk = b""
            if not chunk:
                process.wait(timeout=deadline - time.monotonic())
                return b"".join(chunks).decode(errors="replace")
            chunks.append(chunk)
    process.kill()
    raise AssertionError(f"fraud train did not finish in {seconds}s: {b''.join(chunks)!r}")


def _train_process_args(small_history: pd.DataFrame, tmp_path: Path) -> list[str]:
    """`fraud train` as a child process, on a 4/2/4-day split of ``small_history``."""
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    split = ["--train-days", "4", "--delay-days", "2", "--test-days", "4"]
    where = ["--history", str(history), "--registry", str(tmp_path / "registry")]
    return [sys.executable, "-m", "fraud_cli", "train", *where, *split]


def test_train_in_a_terminal_shows_the_candidate_and_round_every_100_rounds(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        _train_process_args(small_history, tmp_path),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(terminal)
    try:
        screen = _terminal_output(process, controller, seconds=120)
    finally:
        os.close(controller)
    assert process.returncode == 0, screen
    assert re.search(
        r"training +\[#+-*\] +\d+% .*fold 1/1: candidate 1/2 \(screen \d+\): "
        rf"round 100/{TrainingConfig().max_rounds}, best validation AUCPR 0\.\d{{4}} at \d+",
        screen,
    ), screen
    assert "model v1: AUC" in screen
    assert re.search(
        r"\d+\.\ds \(read \d+\.\ds, features \d+\.\ds, training \d+\.\ds, gate \d+\.\ds, report ",
        screen,
    )


def test_train_in_a_log_writes_a_timestamped_line_per_stage_and_detail(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """cron, a pod or compose: a progress bar there draws only its label."""
    done = subprocess.run(
        _train_process_args(small_history, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 "
    for what in (
        r"reading \S+ \.\.\.$",  # the first line too
        r"computing \d+ features for [\d,]+ of [\d,]+ rows$",
        r"fold 1/1: train 2025-03-01 \.\. 2025-03-04, test 2025-03-07 \.\. 2025-03-10$",
        r"fold 1/1: candidate 1/2 \(screen \d+\): round 100/\d+, best validation AUCPR ",
        r"comparing with the champion on the same test window$",
        r"writing the report$",
    ):
        assert re.search(stamp + what, done.stderr, re.MULTILINE), (what, done.stderr)
    assert "training [" not in done.stderr  # no bar


def _small_options(**overrides: Any) -> PipelineOptions:
    settings: dict[str, Any] = {"training": TrainingConfig(seed=3, max_rounds=40), **overrides}
    return PipelineOptions(
        feature_set=CORE_FEATURE_SET, train_days=4, delay_days=2, test_days=4, **settings
    )


def _other_fingerprint(version_dir: Path) -> None:
    fields = json.loads((version_dir / "metadata.json").read_text())
    rewrite_metadata(version_dir, json.dumps({**fields, "feature_set_fingerprint": "0" * 64}))


def _altered_model_file(version_dir: Path) -> None:
    model_file = version_dir / "model.ubj"
    model_file.write_bytes(model_file.read_bytes() + b" ")


def _damaged_metadata(version_dir: Path) -> None:
    fields = json.loads((version_dir / "metadata.json").read_text())
    del fields["feature_names"]
    rewrite_metadata(version_dir, json.dumps(fields))


def _deleted_version(version_dir: Path) -> None:
    shutil.rmtree(version_dir)


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (_other_fingerprint, "model version 1 was trained on feature set"),
        (_altered_model_file, "model version 1: sha256"),
        (_damaged_metadata, "model version 1: "),
        (_deleted_version, "model version 1 does not exist"),
    ],
    ids=[
        "features defined differently now",
        "model file altered",
        "metadata damaged",
        "version directory deleted",
    ],
)
def test_a_champion_this_release_cannot_serve_is_replaced(
    small_history: pd.DataFrame, tmp_path: Path, spoil: Callable[[Path], None], why: str
) -> None:
    """The stream would refuse it, so the gate cannot hold the candidate back with it."""
    registry = ModelRegistry(tmp_path / "registry")
    run_training(small_history, registry=registry, options=_small_options())
    spoil(registry.root / "versions" / "1")
    again = run_training(small_history, registry=registry, options=_small_options())
    assert again.promoted
    assert f"the champion cannot be served ({why}" in again.gate.reason
    assert registry.champion_version() == 2


def test_a_champion_that_trained_on_the_test_window_is_not_judged_on_it(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """Its scores there would flatter it (it saw those payments and their labels): the gate
    says so instead of comparing, and keeps it."""
    registry = ModelRegistry(tmp_path / "registry")
    later = datetime(2025, 3, 5, tzinfo=UTC)  # trains 03-05 .. 03-08
    run_training(small_history, registry=registry, options=_small_options(train_start=later))
    latest = run_training(small_history, registry=registry, options=_small_options())
    assert latest.evaluation.split.describe()["test"] == "2025-03-07 .. 2025-03-10"
    assert not latest.promoted
    assert latest.gate.reason.startswith("champion v1 trained on payments until 2025-03-08 ")
    assert "on or after this test window's first day (2025-03-07)" in latest.gate.reason
    assert registry.champion_version() == 1
    # it did not lose a comparison: none was made
    listing = CliRunner().invoke(cli, ["models", "--registry", str(registry.root), "list"])
    assert " not compared vs v1: champion v1 trained on payments" in listing.output.splitlines()[2]


def test_a_field_no_payment_carries_feeds_no_feature(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """An archive stores a field the events lack as nulls (the handbook's channel): it
    made a constant feature, and a model unlike the one trained on the file."""
    with_channel = run_training(
        small_history, registry=ModelRegistry(tmp_path / "a"), options=_small_options()
    )
    assert "channel_is_online" in with_channel.metadata.feature_names
    without = run_training(
        small_history.assign(channel=None),
        registry=ModelRegistry(tmp_path / "b"),
        options=_small_options(),
    )
    assert "channel_is_online" not in without.metadata.feature_names
    dropped = run_training(
        small_history.drop(columns=["channel"]),
        registry=ModelRegistry(tmp_path / "c"),
        options=_small_options(),
    )
    assert dropped.metadata.model_sha256 == without.metadata.model_sha256
    # nor one that only the test window's days carry (newer payments of an archive)
    test_start = pd.Timestamp(with_channel.evaluation.split.test_start, tz="UTC")
    newer_only = small_history.assign(
        channel=small_history["channel"].where(small_history["event_time"] >= test_start)
    )
    late = run_training(
        newer_only, registry=ModelRegistry(tmp_path / "d"), options=_small_options()
    )
    assert "channel_is_online" not in late.metadata.feature_names


def test_a_test_window_without_fraud_is_refused_before_training(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    honest = small_history.assign(is_fraud=0)
    with pytest.raises(TrainingDataError, match=r"with 0 frauds .* use more --test-days"):
        run_training(honest, registry=ModelRegistry(tmp_path), options=_small_options())
    assert not (tmp_path / "versions").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"folds": 0}, "folds=0 must be at least 1"), ({"cp_tolerance": -0.1}, "cp_tolerance=-0.1")],
)
def test_pipeline_options_are_checked_when_made(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingConfigError, match=message):
        _small_options(**overrides)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "nanh"], "Invalid value for '--every': 'nanh' is not a duration"),
        (["--every", "1e300h"], "'1e300h' is longer than 366d"),
        (["--every", "0s"], "'0s' is not longer than zero"),  # read as "too long"
        (["--every", "24"], "'24' has no unit; write 24h, 24m or 24s"),  # 24 s, meant a day
        (["--every", "1e-9s"], "'1e-9s' is shorter than a second"),
        (["--every", ""], "'' is not a duration"),
        (["--every", "24h", "--train-start", "2025-03-01"], "drop --train-start"),
    ],
)
def test_schedule_settings_are_refused_before_any_run(
    small_history: pd.DataFrame, tmp_path: Path, args: list[str], message: str
) -> None:
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    where = ["--history", str(history), "--registry", str(tmp_path / "registry")]
    result = CliRunner().invoke(cli, ["train", *where, *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "registry" / "versions").exists()


def test_a_single_run_waits_for_no_one_while_another_holds_the_lock(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    registry = tmp_path / "registry"
    with exclusive(registry / ".train.lock") as mine:
        assert mine
        result = CliRunner().invoke(
            cli, ["train", "--history", str(history), "--registry", str(registry)]
        )
    assert result.exit_code == 1
    assert f"another training run (pid {os.getpid()}) holds" in result.output
    assert not (registry / "versions").exists()


def _train_in_a_process(
    small_history: pd.DataFrame, tmp_path: Path
) -> tuple[list[str], Path, Path]:
    """`fraud train` as its own process on the small history, split 4 / 2 / 4: the
    command, the history file and the registry."""
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    registry = tmp_path / "registry"
    where = ["--history", str(history), "--registry", str(registry)]
    split = ["--train-days", "4", "--delay-days", "2", "--test-days", "4"]
    return [sys.executable, "-m", "fraud_cli", "train", *where, *split], history, registry


@pytest.mark.parametrize("when", ["during the first run", "between runs"])
def test_sigterm_stops_the_schedule(
    small_history: pd.DataFrame, tmp_path: Path, wait_until: WaitUntil, when: str
) -> None:
    train, _, registry = _train_in_a_process(small_history, tmp_path)
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [*train, "--every", "24h", "--json"],
            stdout=out,
            stderr=err,
        )
        try:
            if when == "between runs":
                wait_until(
                    lambda: '"model_version": 1' in stdout.read_text(),
                    timeout_s=120,
                    what="the first scheduled run",
                )
            else:
                wait_until(
                    lambda: "reading" in stderr.read_text(),
                    timeout_s=60,
                    what="the first run to start",
                )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, stderr.read_text()
        finally:
            process.kill()
    champion = ModelRegistry(registry).champion_version()
    if when == "between runs":
        assert champion == 1
        assert "training schedule stopped by a stop request between runs" in stderr.read_text()
    else:
        assert "training run cancelled by a stop request" in stderr.read_text()
        assert champion is None


def test_a_schedule_skips_a_tick_with_nothing_new_and_trains_when_something_changed(
    small_history: pd.DataFrame, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """An archive that stopped growing must not fill the registry with the same model;
    new data, and a champion that can no longer be served, train again."""
    train, history, registry = _train_in_a_process(small_history, tmp_path)
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"

    def lines() -> list[dict[str, Any]]:
        return [json.loads(x) for x in stdout.read_text().splitlines() if x.startswith("{")]

    def wait_for(outcomes: set[str], version: int, what: str) -> None:
        key = "repeated_version" if outcomes == {"unchanged"} else "model_version"
        wait_until(
            lambda: any(x["outcome"] in outcomes and x.get(key) == version for x in lines()),
            timeout_s=120,
            what=what,
        )

    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [*train, "--every", "1s", "--json"],
            stdout=out,
            stderr=err,
        )
        try:
            wait_for({"unchanged"}, 1, "a tick after v1 that found nothing new")
            assert ModelRegistry(registry).versions() == [1]
            # the same rows written again: the same history, still nothing to train on
            staged = tmp_path / "staged.parquet"
            small_history.to_parquet(staged)
            staged.replace(history)
            skipped = len(lines())
            wait_until(lambda: len(lines()) > skipped + 1, timeout_s=60, what="two more ticks")
            assert ModelRegistry(registry).versions() == [1]
            # one label more: a new history
            relabelled = small_history.copy()
            relabelled.loc[relabelled.index[-1], "is_fraud"] = 1 - relabelled["is_fraud"].iloc[-1]
            relabelled.to_parquet(staged)
            staged.replace(history)
            wait_for({"promoted", "challenger"}, 2, "v2 trained on the changed history")
            wait_for({"unchanged"}, 2, "a tick after v2 that found nothing new")
            # the champion altered: it cannot be served, so the next tick trains its successor
            champion = ModelRegistry(registry).champion_version()
            model = registry / "versions" / str(champion) / "model.ubj"
            model.write_bytes(model.read_bytes() + b" ")
            wait_for({"promoted"}, 3, "v3 replacing the altered champion")
            wait_for({"unchanged"}, 3, "a tick after v3 that found nothing new")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, stderr.read_text()
        finally:
            process.kill()
    assert ModelRegistry(registry).versions() == [1, 2, 3]
    skip = next(x for x in lines() if x["outcome"] == "unchanged")
    assert (skip["model_version"], skip["promoted"], skip["champion_version"]) == (None, False, 1)
    assert "are as the run that registered v1 left them" in skip["reason"]
    records = RunLog(registry).records()
    assert [r.version for r in records if r.outcome != "unchanged"] == [1, 2, 3]
    assert RunLog(registry).last_completed() == records[-1]


def test_a_schedule_whose_reader_left_registers_each_model_once(
    small_history: pd.DataFrame, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """`fraud train --every 1h --json | reader` whose reader exited: printing failed after
    the run, its inputs were not noted, and every tick registered the same model again."""
    train, _, registry = _train_in_a_process(small_history, tmp_path)
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [*train, "--every", "1s", "--json"],
            stdout=subprocess.PIPE,
            stderr=err,
        )
        assert process.stdout is not None
        process.stdout.close()  # the reader is gone before the first line
        try:
            wait_until(
                lambda: len(RunLog(registry).records()) >= 3, timeout_s=120, what="three ticks"
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0, stderr.read_text()
        finally:
            process.kill()
    outcomes = [r.outcome for r in RunLog(registry).records()]
    assert outcomes[:3] == ["promoted", "unchanged", "unchanged"], stderr.read_text()
    assert ModelRegistry(registry).versions() == [1]
    assert "Traceback" not in stderr.read_text()
    assert "failed" not in stderr.read_text()


def test_sigterm_stops_a_single_run_at_its_next_report(
    small_history: pd.DataFrame, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """As a CronJob's pod is stopped: the run ends at its next progress report, with one
    line and a failure status, and leaves no version behind."""
    train, _, registry = _train_in_a_process(small_history, tmp_path)
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            train,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            wait_until(
                lambda: "reading" in stderr.read_text(), timeout_s=60, what="the run to start"
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 1, stderr.read_text()
        finally:
            process.kill()
    assert "Error: training run cancelled by a stop request" in stderr.read_text()
    assert ModelRegistry(registry).versions() == []
    assert ModelRegistry(registry).champion_version() is None


def test_a_candidate_is_not_promoted_over_a_champion_that_moved_during_its_run(
    small_history: pd.DataFrame, tmp_path: Path, registry_edits: Any
) -> None:
    """An operator promotes another version while the candidate is judged against v1."""
    registry = ModelRegistry(tmp_path / "registry")
    weak = _small_options(training=TrainingConfig(seed=3, max_rounds=1))
    run_training(small_history, registry=registry, options=weak)

    def operator_acts(stage: str) -> None:
        if stage == "writing the report":
            registry.promote(registry_edits.register_copy(registry), forced=True)

    run = run_training(
        small_history, registry=registry, options=_small_options(), progress=operator_acts
    )
    assert not run.promoted
    assert run.metadata.version == 3
    assert "the champion moved from v1 to v2 while v3 was judged against v1" in run.gate.reason
    assert registry.champion_version() == 2
    report = (registry.root / "versions" / "3" / "report" / "index.html").read_text()
    assert "the champion moved from v1 to v2" in report


def test_a_stop_requested_while_the_report_is_written_registers_nothing(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """A SIGTERM during the report's seconds of plots registered and promoted the model,
    and the run exited 0, though the README says a stopped run leaves nothing."""
    registry = ModelRegistry(tmp_path / "registry")
    stop = threading.Event()

    def progress(stage: str) -> None:
        check_stop(stop)
        if stage == "writing the report":
            stop.set()  # as SIGTERM would, while the report is being written

    with pytest.raises(RunCancelled):
        run_training(
            small_history,
            registry=registry,
            options=_small_options(),
            progress=progress,
            detail=lambda _: check_stop(stop),
        )
    assert registry.versions() == []
    assert registry.champion_version() is None
    assert [p.name for p in (registry.root / "versions").iterdir()] == []


def test_a_run_whose_report_fails_registers_no_version(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    """A version appears with its report: one whose report failed (or whose run was killed
    while writing it) would pass the gate's check in `models promote` unseen."""
    registry = ModelRegistry(tmp_path / "registry")
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    with pytest.raises(OutputWriteError, match=r"cannot write the report in \S*a-file: .*"):
        run_training(
            small_history, registry=registry, options=_small_options(report_dir=not_a_directory)
        )
    assert registry.versions() == []
    assert [p.name for p in (registry.root / "versions").iterdir()] == []
    with pytest.raises(OutputWriteError, match=r"cannot write the predictions in \S*a-file/p"):
        run_training(
            small_history,
            registry=registry,
            options=_small_options(predictions_out=not_a_directory / "p.parquet"),
        )
    assert registry.versions() == []
    run = run_training(small_history, registry=registry, options=_small_options())
    assert run.report == registry.version_dir(1) / "report" / "index.html"
    assert run.report.is_file()


@pytest.mark.parametrize(
    ("option", "what", "message"),
    [
        ("--registry", "file", "--registry {path} is a file, not a directory"),
        ("--report-dir", "file", "--report-dir {path} is a file, not a directory"),
        ("--predictions-out", "directory", "--predictions-out {path} is a directory"),
        ("--predictions-out", "under a file", "cannot write in {path.parent} (not a directory)"),
        # root may write anywhere by os.access, but no file can be made in /proc
        ("--predictions-out", "in /proc", "cannot write in /proc ("),
        ("--report-dir", "in /proc", "--report-dir /proc/p.parquet: cannot write in /proc ("),
        # making the link's directory failed only after the run
        ("--predictions-out", "under a dangling link", "is a symbolic link to /nonexistent/d"),
        ("--predictions-out", "a dangling link", "{path}: it is a symbolic link to /nonexistent"),
        ("--report-dir", "a dangling link", "{path}: it is a symbolic link to /nonexistent/d"),
        ("--registry", "a dangling link", "{path}: it is a symbolic link to /nonexistent/d"),
        ("--predictions-out", "csv", "it is written as Parquet; name the file p.parquet"),
        ("--predictions-out", "csv.gz", "it is written as Parquet; name the file p.parquet"),
        ("--predictions-out", "missing dir/", "ends in a separator, so it names a directory"),
        # it replaced the history with the test window's scores
        ("--predictions-out", "the history", "is the history {path} this command reads"),
        # it replaced the champion's model file, or its report, with this run's
        ("--predictions-out", "in the registry", "is inside the registry"),
        ("--report-dir", "in the registry", "is inside the registry"),
        ("--report-dir", "the registry", "is the registry"),
    ],
)
@pytest.mark.parametrize("every", [[], ["--every", "30s"]], ids=["once", "scheduled"])
def test_outputs_it_cannot_write_are_usage_errors_before_any_run(
    small_history: pd.DataFrame,
    tmp_path: Path,
    option: str,
    what: str,
    message: str,
    every: list[str],
) -> None:
    """Not a traceback after a whole run, nor one at every tick of a schedule."""
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    path = {
        "file": a_file,
        "directory": tmp_path,
        "under a file": a_file / "p.parquet",
        "in /proc": Path("/proc/p.parquet"),
        "under a dangling link": tmp_path / "link" / "p.parquet",
        "a dangling link": tmp_path / "link",
        "csv": tmp_path / "p.csv",
        "csv.gz": tmp_path / "p.csv.gz",
        "missing dir/": tmp_path / "out",
        "the history": history,
        "in the registry": tmp_path / "registry" / "versions" / "1" / "model.ubj",
        "the registry": tmp_path / "registry",
    }[what]
    (tmp_path / "link").symlink_to("/nonexistent/d")
    value = f"{path}/" if what.endswith("/") else str(path)
    where = {"--history": str(history), "--registry": str(tmp_path / "registry"), option: value}
    args = [part for pair in where.items() for part in pair]
    result = CliRunner().invoke(cli, ["train", *args, *every])
    assert result.exit_code == 2, result.output
    assert message.format(path=path) in result.output
    assert isinstance(result.exception, SystemExit)
    assert not (tmp_path / "registry" / "versions").exists()
    assert not (tmp_path / "out").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(history), small_history)


def test_models_prune_says_what_it_removes_and_a_dry_run_removes_nothing(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    for _ in range(3):
        registry_edits.register_copy(registry_copy)  # versions 2..4; v1 is the champion
    models = ["models", "--registry", str(registry_copy.root), "prune"]
    dry = CliRunner().invoke(cli, [*models, "--keep", "1", "--dry-run"])
    assert dry.output == "would remove v2, v3; 2 versions kept\n"
    assert registry_copy.versions() == [1, 2, 3, 4]
    done = CliRunner().invoke(cli, [*models, "--keep", "1"])
    assert done.output == "removed v2, v3; 2 versions kept\n"
    assert registry_copy.versions() == [1, 4]
    refused = CliRunner().invoke(cli, [*models, "--keep", "0"])
    assert refused.exit_code == 2


def test_a_registry_this_user_cannot_change_is_one_line_and_a_dry_run_still_works(
    registry_copy: ModelRegistry, registry_edits: Any
) -> None:
    """A read-only registry (or another user's) said only `[Errno 30] ... .champion.lock`.
    The lock file made a directory stands in for one that cannot be opened for writing."""
    registry_edits.register_copy(registry_copy)
    lock = registry_copy.root / ".champion.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    models = ["models", "--registry", str(registry_copy.root)]
    for command in (["promote", "2", "--force"], ["prune", "--keep", "1"]):
        result = CliRunner().invoke(cli, [*models, *command])
        assert result.exit_code == 1, result.output
        assert result.output.startswith(
            f"Error: cannot change {registry_copy.root}: {lock} cannot be opened for writing "
            "(Is a directory); run this as a user who may write the registry"
        ), result.output
        assert registry_copy.champion_version() == 1
    dry = CliRunner().invoke(cli, [*models, "prune", "--keep", "1", "--dry-run"])
    assert dry.output == "would remove nothing; 2 versions kept\n"


def test_a_failed_promotion_names_the_version_it_registered(
    small_history: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version exists, a challenger: the JSON line and the run log said none did."""

    def disk_full(self: ModelRegistry, version: int, **_: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ModelRegistry, "promote", disk_full)
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    registry = tmp_path / "registry"
    where = ["--history", str(history), "--registry", str(registry), "--json"]
    window = ["--train-days", "4", "--delay-days", "2", "--test-days", "4"]
    result = CliRunner().invoke(cli, ["train", *where, *window])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    line = json.loads(next(x for x in lines if x.startswith("{")))
    assert (line["outcome"], line["model_version"]) == ("failed", 1)
    assert line["error"] == "PromotionFailedError"
    assert "No space left on device" in line["reason"]
    assert "`fraud models promote 1`" in lines[-1]
    assert ModelRegistry(registry).versions() == [1]
    assert ModelRegistry(registry).champion_version() is None
    (record,) = RunLog(registry).records()
    assert (record.outcome, record.version) == ("failed", 1)
    report = (registry / "versions" / "1" / "report" / "index.html").read_text()
    assert "the promotion failed" in report


@pytest.mark.parametrize(
    "args",
    [
        ["models", "--registry", "", "list"],
        ["models", "--registry", " ", "runs"],
        ["train", "--history", "", "--registry", "r"],
        ["train", "--history", "h.parquet", "--registry", ""],
        ["train", "--history", "h.parquet", "--registry", "r", "--report-dir", ""],
        ["features", "build", "--history", "", "--out", "f.parquet"],
    ],
    ids=["models list", "models runs", "history", "registry", "report-dir", "features"],
)
def test_a_blank_path_is_a_usage_error_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """`--registry ''` made a registry in the working directory; `models --registry ''
    list` listed nothing and exited 0."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "is blank; give a path" in result.output
    assert list(tmp_path.iterdir()) == []
