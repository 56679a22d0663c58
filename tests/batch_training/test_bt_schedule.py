"""The retraining schedule survives a failed run and stops when asked."""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path

import pytest

from batch_training.errors import TrainingConfigError
from batch_training.schedule import check_stop, run_every
from feature_store import HistoryTooLargeError


def test_a_failed_run_does_not_end_the_schedule() -> None:
    stop = threading.Event()
    calls: list[int] = []

    def job() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first run fails")
        if len(calls) == 3:
            stop.set()

    assert run_every(0.001, job, stop=stop) == 2
    assert len(calls) == 3


@pytest.mark.parametrize("interval", [0, -1, math.nan, math.inf])
def test_interval_must_be_positive_and_finite(interval: float) -> None:
    with pytest.raises(TrainingConfigError, match=r"s must be > 0, e\.g\. --every 24h"):
        run_every(interval, lambda: None)


def test_a_lock_file_that_cannot_be_made_does_not_end_the_schedule(tmp_path: Path) -> None:
    """An unavailable mount may come back: the tick fails, is logged, and the next one comes."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    stop = threading.Event()
    failures: list[logging.LogRecord] = []

    class StopOnSecondFailure(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            failures.append(record)
            if len(failures) == 2:
                stop.set()

    handler = StopOnSecondFailure(level=logging.ERROR)
    logger = logging.getLogger("batch_training.schedule")
    logger.addHandler(handler)
    try:
        ran = run_every(0.001, lambda: None, lock_path=blocker / "train.lock", stop=stop)
    finally:
        logger.removeHandler(handler)
    assert ran == 0
    assert len(failures) == 2
    assert failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], NotADirectoryError | FileExistsError)


def test_a_cancelled_run_is_logged_as_cancelled_not_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()

    def job() -> None:
        stop.set()  # as SIGTERM would, mid-run
        check_stop(stop)
        raise RuntimeError("check_stop did not end the run")

    with caplog.at_level(logging.WARNING, logger="batch_training.schedule"):
        assert run_every(3600, job, stop=stop) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "training run cancelled by a stop request; nothing was promoted"
    ]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            HistoryTooLargeError(Path("archive"), 30, 20, None, "raise the limit"),
            "history 'archive' holds 30 rows, more than the limit of 20 (peak memory grows "
            "by about 0.5 GB per million rows): raise the limit",
        ),
        (
            FileNotFoundError("history 'h' does not exist; create one with `fraud simulate`"),
            "history 'h' does not exist; create one with `fraud simulate`",
        ),
    ],
    ids=["over the row limit", "no history"],
)
def test_a_run_refused_with_a_fix_is_logged_in_one_line(
    caplog: pytest.LogCaptureFixture, error: Exception, message: str
) -> None:
    """An error that says what to fix needs no traceback: the compose trainer would print
    one at every tick."""
    stop = threading.Event()

    def job() -> None:
        stop.set()
        raise error

    with caplog.at_level(logging.ERROR, logger="batch_training.schedule"):
        assert run_every(3600, job, stop=stop) == 0
    (record,) = caplog.records
    assert record.exc_info is None
    assert record.getMessage() == (
        f"scheduled training run failed: {message}; retrying at the next tick"
    )
