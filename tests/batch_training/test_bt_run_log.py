"""Every training run leaves a line in the registry's run log, however it ends, and
``fraud models runs --check`` turns a schedule that stopped completing into an exit code."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from batch_training.run_log import RunLog, RunRecord
from batch_training.schedule import RunCancelled
from fraud_cli.main import cli
from fraud_cli.models_cmd import _age
from fraud_cli.train_cmd import _pipeline_options, _recorded, _train_once
from fraud_cli.train_history import ReadSettings
from simulator.config import SimulationConfig
from simulator.generator import TrafficGenerator
from tests.conftest import WaitUntil


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generator = TrafficGenerator(SimulationConfig(cards=150, merchants=15, seed=5))
    frame = generator.history(start=datetime(2026, 10, 1, tzinfo=UTC), days=30)
    path = tmp_path_factory.mktemp("history") / "history.parquet"
    frame.to_parquet(path)
    return path


def _runs(registry: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["models", "--registry", str(registry), "runs", *extra])
    return result.exit_code, result.output


def test_completed_and_failed_runs_are_logged_and_checked(history: Path, tmp_path: Path) -> None:
    train = ["train", "--history", str(history), "--registry", str(tmp_path), "--json"]
    refused = CliRunner().invoke(cli, [*train, "--max-rows", "10"])
    assert refused.exit_code == 1
    # --json: stdout's last line says the outcome, like a completed run's
    outcome = json.loads(refused.stdout.strip().splitlines()[-1])
    assert outcome["outcome"] == "failed"
    assert (outcome["error"], outcome["model_version"]) == ("HistoryTooLargeError", None)
    assert "more than the limit of 10" in outcome["reason"]
    code, output = _runs(tmp_path, "--check", "1h")
    assert code == 1
    assert "no training run has completed" in output
    trained = CliRunner().invoke(cli, train)
    assert trained.exit_code == 0, trained.output
    summary = json.loads(trained.output.strip().splitlines()[-1])
    assert summary["outcome"] == "promoted"

    failed, promoted = RunLog(tmp_path).records()
    assert (failed.outcome, failed.error, failed.version) == (
        "failed",
        "HistoryTooLargeError",
        None,
    )
    assert "more than the limit of 10" in failed.reason
    assert (promoted.outcome, promoted.version) == ("promoted", summary["model_version"])
    assert promoted.reason == summary["gate"]
    assert promoted.metrics == summary["metrics"]
    code, output = _runs(tmp_path, "--check", "1h")
    assert code == 0
    lines = output.splitlines()
    assert [line.split()[2] for line in lines] == ["failed", "promoted"]
    assert f"v{summary['model_version']}" in lines[1]
    code, output = _runs(tmp_path, "--last", "1", "--json")
    assert [json.loads(line)["outcome"] for line in output.splitlines()] == ["promoted"]
    # a bad --check is refused, naming the option, before any run is printed
    code, output = _runs(tmp_path, "--check", "abc")
    assert (code, output.splitlines()[0].endswith("models runs [OPTIONS]")) == (2, True)
    assert "Invalid value for '--check': 'abc' is not a duration" in output


def test_a_card_number_quoted_by_an_error_is_neither_printed_nor_logged(
    history: Path, tmp_path: Path
) -> None:
    """A producer that uses card numbers as ids: the refusal quotes the duplicated id."""
    frame = pd.read_parquet(history)
    frame.loc[[0, 1], "transaction_id"] = "4111 1111 1111 1111"
    spoiled = tmp_path / "pan_ids.parquet"
    frame.to_parquet(spoiled)
    registry = tmp_path / "registry"
    refused = CliRunner().invoke(
        cli, ["train", "--history", str(spoiled), "--registry", str(registry)]
    )
    assert refused.exit_code == 1
    assert "duplicate transaction_id(s) (e.g. ['[PAN-REDACTED]'])" in refused.output
    assert "4111" not in refused.output
    (failed,) = RunLog(registry).records()
    assert "[PAN-REDACTED]" in failed.reason
    assert "4111" not in (registry / "runs.jsonl").read_text()
    # a line an earlier release wrote unredacted is redacted when shown
    with (registry / "runs.jsonl").open("a") as log_file:
        old = RunRecord(
            started="2026-12-01T03:00:00+00:00",
            seconds=1.0,
            outcome="failed",
            reason="duplicate transaction_id(s) (e.g. ['5500 0000 0000 0004'])",
        )
        log_file.write(json.dumps(vars(old)) + "\n")
    for extra in ((), ("--json",)):
        code, output = _runs(registry, *extra)
        assert code == 0
        assert "5500" not in output
        assert output.count("[PAN-REDACTED]") == 2


def test_a_run_killed_by_the_kernel_is_recorded_by_the_next_one(
    history: Path, tmp_path: Path, wait_until: WaitUntil
) -> None:
    """An out-of-memory kill or a SIGKILL runs no handler: the run's marker stays, and the
    next run (under the same lock) records it, so `models runs --check` and a person
    reading the log see it."""
    registry = tmp_path / "registry"
    train = ["train", "--history", str(history), "--registry", str(registry)]
    process = subprocess.Popen(
        [sys.executable, "-m", "fraud_cli", *train],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = registry / ".run-in-progress.json"
    try:
        wait_until(marker.is_file, timeout_s=60, what="the run's in-progress marker")
        started = json.loads(marker.read_text())
        assert started["pid"] == process.pid
    finally:
        process.kill()
        process.wait(timeout=30)
    assert RunLog(registry).records() == []  # the killed run wrote nothing itself
    trained = CliRunner().invoke(cli, train)
    assert trained.exit_code == 0, trained.output
    killed, promoted = RunLog(registry).records()
    assert (killed.outcome, killed.error, killed.started) == (
        "failed",
        "Killed",
        started["started"],
    )
    assert f"(pid {process.pid}) ended without a record: killed by the kernel" in killed.reason
    assert promoted.outcome == "promoted"
    assert not marker.exists()


def test_a_stale_schedule_fails_the_check(tmp_path: Path) -> None:
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    log = RunLog(tmp_path)
    log.append(RunRecord(three_days_ago.isoformat(), 3600.0, "challenger", "AP not better", 4))
    later = (three_days_ago + timedelta(days=1)).isoformat()
    log.append(RunRecord(later, 5.0, "failed", "disk full", error="OSError"))
    code, output = _runs(tmp_path, "--check", "26h")
    assert code == 1
    assert "the last completed training run ended 71.0h ago, more than 26h" in output
    assert _runs(tmp_path, "--check", "3d")[0] == 0


def test_a_torn_line_is_skipped_and_the_next_record_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = RunLog(tmp_path)
    log.append(RunRecord(datetime.now(UTC).isoformat(), 1.0, "promoted", "first", 1))
    with log.path.open("a") as f:
        f.write('{"started": "2026-')  # a crash mid-write
    log.append(RunRecord(datetime.now(UTC).isoformat(), 1.0, "challenger", "after", 2))
    assert [r.reason for r in log.records()] == ["first", "after"]
    assert "line 2 is unreadable" in caplog.text


@pytest.mark.parametrize(
    "changed",
    [{"metrics": None}, {"seconds": "1"}, {"started": "yesterday"}, {"outcome": "won"},
     {"version": "3"}, {"metrics": {"average_precision": "high"}}],
)  # fmt: skip
def test_a_line_with_a_wrong_field_is_skipped_not_a_crash(
    tmp_path: Path, changed: dict[str, object]
) -> None:
    good = {"started": "2026-12-01T03:00:00+00:00", "seconds": 1.0, "outcome": "promoted",
            "reason": "ok", "version": 1, "metrics": {}}  # fmt: skip
    (tmp_path / "runs.jsonl").write_text(json.dumps(good | changed) + "\n")
    assert RunLog(tmp_path).records() == []
    code, output = _runs(tmp_path, "--check", "1h")
    assert code == 1
    assert "no training run has completed" in output


def test_a_newer_field_and_a_time_without_offset_are_read(tmp_path: Path) -> None:
    line = {"started": "2026-12-01T03:00:00", "seconds": 1.0, "outcome": "challenger",
            "reason": "ok", "host": "trainer-0"}  # fmt: skip
    (tmp_path / "runs.jsonl").write_text(json.dumps(line) + "\n")
    (record,) = RunLog(tmp_path).records()
    assert record.started_at == datetime(2026, 12, 1, 3, tzinfo=UTC)


def test_an_undefined_metric_is_written_as_null(tmp_path: Path) -> None:
    record = RunRecord("2026-12-01T03:00:00+00:00", 1.0, "challenger", "ok", 1,
                       metrics={"roc_auc": float("nan"), "average_precision": 0.5})  # fmt: skip
    RunLog(tmp_path).append(record)
    text = (tmp_path / "runs.jsonl").read_text()
    assert "NaN" not in text
    assert json.loads(text)["metrics"] == {"roc_auc": None, "average_precision": 0.5}


def test_a_run_that_completed_is_not_also_recorded_as_failed(tmp_path: Path) -> None:
    """Printing the summary can fail after the run is done (a closed pipe)."""

    def run_then_print() -> None:
        with _recorded(tmp_path) as completed:
            completed(outcome="promoted", reason="first", version=1, metrics={})
            raise BrokenPipeError

    with pytest.raises(BrokenPipeError):
        run_then_print()
    assert [r.outcome for r in RunLog(tmp_path).records()] == ["promoted"]


def test_a_cancelled_run_is_logged_as_cancelled(
    history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = threading.Event()
    stop.set()  # as SIGTERM before the first progress report
    options = {
        "feature_set": "core", "train_days": 7, "delay_days": 7, "test_days": 7, "folds": 1,
        "label_delay_days": 7, "seed": 7, "tune": False, "alert_rate": 0.005,
        "review_capacity": None, "review_fee": 5.0, "decline_fee": 25.0, "cp_tolerance": 0.01,
        "no_promote": False, "report_dir": None, "predictions_out": None,
    }  # fmt: skip
    with pytest.raises(RunCancelled):
        _train_once(
            history, tmp_path, _pipeline_options(options, None), ReadSettings("native", 10**9),
            as_json=True, stop=stop,
        )  # fmt: skip
    (cancelled,) = RunLog(tmp_path).records()
    assert cancelled.outcome == "cancelled"
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # --json
    assert (line["outcome"], line["error"], line["promoted"]) == (
        "cancelled",
        "RunCancelled",
        False,
    )
    # worded as the run log and the Error line word it
    assert (
        line["reason"] == cancelled.reason == "a stop request; nothing was registered or promoted"
    )
    assert not (tmp_path / "versions").exists()


@pytest.mark.parametrize(
    ("seconds", "said"), [(3.2, "3s"), (119, "119s"), (600, "10 min"), (14_400, "4.0h")]
)
def test_the_check_says_an_age_in_a_unit_that_shows_it(seconds: float, said: str) -> None:
    assert _age(seconds) == said  # "0.0h ago, more than 1s" said nothing


@pytest.mark.parametrize(("ran_hours_ago", "exit_code"), [(1, 0), (72, 1)])
def test_a_reader_that_leaves_early_does_not_change_the_checks_exit_code(
    tmp_path: Path, ran_hours_ago: int, exit_code: int
) -> None:
    """`fraud models runs --check 26h | head -1` exited 1, a failed check, on a closed pipe."""
    started = datetime.now(UTC) - timedelta(hours=ran_hours_ago)
    RunLog(tmp_path).append(RunRecord(started.isoformat(), 5.0, "promoted", "better AP", 1))
    fraud = [sys.executable, "-m", "fraud_cli"]
    process = subprocess.Popen(
        [*fraud, "models", "--registry", str(tmp_path), "runs", "--check", "26h"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == exit_code, stderr
    assert "Traceback" not in stderr
    assert "Broken pipe" not in stderr
