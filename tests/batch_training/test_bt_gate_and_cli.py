"""The promotion gate both ways, the models commands, the schedule lock, train --json,
and what fraud train shows in a terminal."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from batch_training.gate import promotion_gate
from batch_training.registry import ModelRegistry
from batch_training.schedule import exclusive, run_every
from fraud_cli.main import cli


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
    # the same data and seed again: not better on the same window, so v2 stays a challenger
    second = json.loads(runner.invoke(cli, args).output.strip().splitlines()[-1])
    assert second["model_version"] == 2
    assert second["promoted"] is False
    assert "does not beat" in second["gate"]
    models = ["models", "--registry", str(registry)]
    listing = runner.invoke(cli, [*models, "list"])
    assert listing.exit_code == 0
    assert "*" in listing.output.splitlines()[1]  # v1 is the champion
    refused = runner.invoke(cli, [*models, "promote", "2"])
    assert refused.exit_code != 0
    assert "--force" in refused.output
    assert runner.invoke(cli, [*models, "promote", "2", "--force"]).exit_code == 0
    assert ModelRegistry(registry).champion_version() == 2
    # undoing a forced promotion needs no --force
    assert runner.invoke(cli, [*models, "rollback"]).exit_code == 0
    assert ModelRegistry(registry).champion_version() == 1
    assert runner.invoke(cli, [*models, "rollback"]).exit_code != 0  # v1 passed the gate
    shown = json.loads(runner.invoke(cli, [*models, "show", "1"]).output)
    assert shown["version"] == 1
    assert len(shown["model_sha256"]) == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--train-start", "2001-01-01"], "choose another --train-start or fewer days"),
        (["train", "--folds", "0"], "folds=0 must be at least 1 (--folds)"),
        (["models", "show", "9"], "model version 9 does not exist in"),
        (["models", "rollback"], "has no champion to roll back"),
    ],
)
def test_mistakes_end_with_one_line_saying_what_to_fix(
    small_history: pd.DataFrame, tmp_path: Path, args: list[str], message: str
) -> None:
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    registry = str(tmp_path / "registry")
    where = ["--history", str(history), "--registry", registry]
    full = [*args, *where] if args[0] == "train" else [args[0], "--registry", registry, *args[1:]]
    result = CliRunner().invoke(cli, full)
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: ")
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


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


def test_train_in_a_terminal_shows_the_candidate_and_round_every_100_rounds(
    small_history: pd.DataFrame, tmp_path: Path
) -> None:
    history = tmp_path / "history.parquet"
    small_history.to_parquet(history)
    split = ["--train-days", "4", "--delay-days", "2", "--test-days", "4"]
    where = ["--history", str(history), "--registry", str(tmp_path / "registry")]
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fraud_cli", "train", *where, *split],
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
        r"round 100/1500, best validation AUCPR 0\.\d{4} at \d+",
        screen,
    ), screen
    assert "model v1: AUC" in screen
