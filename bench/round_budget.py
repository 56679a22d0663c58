"""What the rounds past a budget buy on the test window: test AP by the model's first N rounds.

    .venv/bin/python bench/round_budget.py --history PATH [--columns native|handbook]
        --cases 2026-01-29:core,2026-01-29:extended,... [--max-rounds 1500]
        [--name round_budget] [--json]

Each case (first training day : feature set) fits one fold with the trainer's defaults
but a round budget of ``--max-rounds``, then scores the test window with the first 100,
200, ... rounds of that model. Boosting is sequential and seeded round by round, so the
first N rounds of a longer fit are exactly the model a budget of N would ship (as long as
the candidate chosen, which is decided after the screen, stays the same). Validation AUCPR
keeps creeping up on a large window long after the test window stops gaining: this shows
where. Last line: JSON, also written to bench/results/<--name>.json next to a plot.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import os  # noqa: E402

from fraud_cli.entry import wait_passively_by_default  # noqa: E402

wait_passively_by_default(os.environ)  # as `fraud train` runs: before XGBoost is imported

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import date  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from batch_training.dataset import TimeSplit, split_history  # noqa: E402
from batch_training.folds import FoldFeatures, fit_fold  # noqa: E402
from batch_training.train import TrainingConfig  # noqa: E402
from bench.results_files import save_figure, write_result  # noqa: E402
from feature_store import feature_set_by_name, read_history  # noqa: E402

_EVERY = 100  # rounds between the prefixes scored


def _case(
    history: pd.DataFrame,
    train_start: date,
    feature_set: str,
    config: TrainingConfig,
    say: Callable[[str], None],
) -> dict[str, Any]:
    computed = feature_set_by_name(feature_set).available_for(frozenset(history.columns))
    data = split_history(history, TimeSplit(train_start=train_start))
    features = FoldFeatures.compute(computed, history, [data])
    started = time.perf_counter()
    fitted, evaluation = fit_fold(features, data, config)
    fit_seconds = time.perf_counter() - started
    test = xgb.DMatrix(features.take(data.test), feature_names=features.names)
    labels = history["is_fraud"].to_numpy(dtype=np.int8)[data.test]
    prefixes = [*range(_EVERY, fitted.rounds, _EVERY), fitted.rounds]
    test_ap = {
        n: round(
            float(
                average_precision_score(
                    labels, fitted.booster.predict(test, iteration_range=(0, n))
                )
            ),
            4,
        )
        for n in prefixes
    }
    say(
        f"{train_start} {feature_set}: {fitted.rounds} rounds, AP {test_ap[fitted.rounds]}, "
        f"{fit_seconds:.0f} s; by rounds {test_ap}"
    )
    return {
        "train_start": str(train_start),
        "feature_set": feature_set,
        "test": data.split.describe()["test"],
        "rounds": fitted.rounds,
        "average_precision": round(evaluation.metrics["average_precision"], 4),
        "chosen": fitted.candidates[fitted.selection["chosen"] - 1]["params"],
        "validation_ap": round(fitted.validation_ap, 4),
        "test_ap_by_rounds": test_ap,
        "fit_seconds": round(fit_seconds, 1),
    }


def _plot(cases: list[dict[str, Any]], budget: int, name: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for case in cases:
        rounds = [int(r) for r in case["test_ap_by_rounds"]]  # str keys when read back
        ax.plot(
            rounds,
            list(case["test_ap_by_rounds"].values()),
            marker=".",
            label=f"train from {case['train_start']}, {case['feature_set']}",
        )
    default = TrainingConfig().max_rounds
    ax.axvline(
        default, color="k", linestyle=":", label=f"the trainer's budget ({default:,} rounds)"
    )
    ax.set_xlabel(f"rounds of the model (fitted with a budget of {budget})")
    ax.set_ylabel("test AP")
    ax.legend(fontsize=8)
    return save_figure(fig, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--columns", choices=["native", "handbook"], default="native")
    parser.add_argument(
        "--cases", required=True, help="comma-separated first-training-day:feature-set pairs"
    )
    parser.add_argument("--max-rounds", type=int, default=1500)
    parser.add_argument("--name", default="round_budget", help="the result files' name")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()

    def say(message: str) -> None:
        if not args.json:
            print(message, flush=True)

    started = time.perf_counter()
    history = read_history(args.history, columns=args.columns)
    config = dataclasses.replace(TrainingConfig(), max_rounds=args.max_rounds)
    cases = []
    for case in args.cases.split(","):
        day, _, feature_set = case.partition(":")
        cases.append(_case(history, date.fromisoformat(day), feature_set or "core", config, say))
    plot = _plot(cases, args.max_rounds, args.name)
    write_result(
        args.name,
        {
            "history": str(args.history),
            "max_rounds": args.max_rounds,
            "cases": cases,
            "plot": str(plot),
            "seconds": round(time.perf_counter() - started),
        },
    )


if __name__ == "__main__":
    main()
