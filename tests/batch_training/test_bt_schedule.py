"""The retraining schedule survives a failed run and stops when asked."""

from __future__ import annotations

import threading

import pytest

from batch_training.errors import TrainingConfigError
from batch_training.schedule import run_every


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


def test_interval_must_be_positive() -> None:
    with pytest.raises(TrainingConfigError, match=r"interval 0s must be > 0, e\.g\. --every 24h"):
        run_every(0, lambda: None)
