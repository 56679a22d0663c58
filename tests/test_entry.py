"""The ``fraud`` executable's OpenMP wait policy, as libgomp itself reports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FRAUD = Path(sys.executable).with_name("fraud")


def _libgomp_settings(command: list[str], **env: str) -> str:
    """What libgomp read at its start (it prints it with OMP_DISPLAY_ENV)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [*command, "--help"],
        env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stderr


@pytest.mark.parametrize(
    "command", [[str(FRAUD)], [sys.executable, "-m", "fraud_cli"]], ids=["script", "module"]
)
def test_openmp_threads_sleep_rather_than_spin_by_default(command: list[str]) -> None:
    """Spinning threads made a training run 1.4-4.7x as long beside a busy core."""
    assert "GOMP_SPINCOUNT = '0'" in _libgomp_settings(command)


def test_libgomp_spins_without_the_setting() -> None:
    """The check above could fail: a plain import of XGBoost spins."""
    settings = _libgomp_settings([sys.executable, "-c", "import xgboost", "--"])
    assert "GOMP_SPINCOUNT = '300000'" in settings


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "OMP_WAIT_POLICY = 'ACTIVE'"),
        ({"GOMP_SPINCOUNT": "1234"}, "GOMP_SPINCOUNT = '1234'"),
    ],
)
def test_an_operators_own_wait_setting_is_kept(env: dict[str, str], shown: str) -> None:
    assert shown in _libgomp_settings([str(FRAUD)], **env)


@pytest.mark.parametrize("name", ["OMP_WAIT_POLICY", "GOMP_SPINCOUNT"])
def test_a_blank_wait_setting_is_no_choice(name: str) -> None:
    """Compose's `${VAR:-}` or a manifest's `value: ""`: libgomp would warn and spin."""
    settings = _libgomp_settings([str(FRAUD)], **{name: " "})
    assert "GOMP_SPINCOUNT = '0'" in settings
    assert "Invalid value" not in settings
