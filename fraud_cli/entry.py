"""The ``fraud`` executable: the process's settings that must precede every import, then
the command line."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["main", "wait_passively_by_default"]


def wait_passively_by_default(environ: MutableMapping[str, str]) -> None:
    """OpenMP threads sleep, not spin, between parallel regions, unless the operator chose.

    libgomp (bundled with XGBoost and scikit-learn) lets a waiting thread spin first: beside
    a busy core the spinner takes the slice the thread it waits for needs, and a training
    run took 1.4-4.7x as long (``bench/omp_wait.py``; dmlc/xgboost#8729). libgomp reads this once,
    when it is loaded, so it is set before anything imports XGBoost.
    """
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        if not environ.get(name, "").strip():  # blank (`${VAR:-}`, `value: ""`) is unset:
            environ.pop(name, None)  # libgomp would warn and spin
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"


def main() -> None:
    wait_passively_by_default(os.environ)
    from fraud_cli.main import cli  # imports XGBoost: after the setting above

    cli()
