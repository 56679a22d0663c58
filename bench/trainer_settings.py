"""Which trainer settings rank frauds best, judged over several test windows and seeds.

    .venv/bin/python bench/trainer_settings.py [--history PATH --columns native|handbook]
        [--train-start DAY] [--feature-set NAME] [--windows W] [--seeds 7,1,2,3]
        [--settings current,bins_256,...] [--name trainer_settings] [--json]

One test window and one seed move average precision by about 0.01 on the handbook, more
than most setting changes: a setting is judged by the mean over ``--windows`` prequential
test windows (the handbook protocol, shifted back one test window at a time) times
``--seeds``, and by how many of those runs it wins against ``current`` (the trainer's
defaults). Features are computed once; every setting fits the same folds, interleaved, so
``fit_seconds`` ratios are comparable (2 cores: compare ratios, not seconds).

Defaults: the handbook history (``--columns handbook``), train from 2018-07-25, the
``extended`` set. Last line: JSON, also written to bench/results/<--name>.json next to
a plot, <--name>.png.
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
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from batch_training.dataset import TimeSplit, fold_splits, split_history  # noqa: E402
from batch_training.folds import FoldFeatures, fit_fold  # noqa: E402
from batch_training.train import TrainingConfig  # noqa: E402
from bench.results_files import save_figure, write_result  # noqa: E402
from feature_store import feature_set_by_name, read_history  # noqa: E402

HANDBOOK = HERE.parents[1] / "shared/datasets/handbook/transactions_raw.parquet"
# each a change from the trainer's defaults, named for what it changes
SETTINGS: dict[str, dict[str, Any]] = {
    "current": {},
    "search_all_rows": {"search_rows": 1 << 40},
    "tune": {"tune": True},
    "tune_search_all_rows": {"tune": True, "search_rows": 1 << 40},
    # The handbook's 54k-row fitting parts are below the default limit: a 20k search sample
    # (37 % of the rows, as 400k is of the 10M history's 1.07M) is the proxy for whether
    # the sample changes what the search, or --tune, chooses.
    "search_20k": {"search_rows": 20_000},
    "tune_search_20k": {"tune": True, "search_rows": 20_000},
    "highest_validation_ap": {"min_gain_se": 0.0},
    "tune_highest_validation_ap": {"tune": True, "min_gain_se": 0.0},
    "bins_256": {"max_bin": 256},
    "every_round": {"validation_every": 1},
    "no_screen": {"screen_rounds": 1 << 30},
    "depth_6_eta_0.1": {"max_depth": 6, "learning_rate": 0.1, "early_stopping_rounds": 40},
}


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _summary(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    aps = [r["average_precision"] for r in runs]
    gains = [
        r["average_precision"] - b["average_precision"] for r, b in zip(runs, baseline, strict=True)
    ]
    return {
        "mean_average_precision": round(statistics.fmean(aps), 4),
        "std_average_precision": round(statistics.pstdev(aps), 4),
        "mean_card_precision_at_100": round(
            statistics.fmean(r["card_precision_at_100"] for r in runs), 4
        ),
        "mean_roc_auc": round(statistics.fmean(r["roc_auc"] for r in runs), 4),
        "mean_gain_over_current": round(statistics.fmean(gains), 4),
        "wins_over_current": sum(g > 0 for g in gains),
        "runs": len(runs),
        "median_fit_seconds": round(statistics.median(r["fit_seconds"] for r in runs), 2),
    }


def _plot(
    runs: dict[str, list[dict[str, Any]]], summary: dict[str, Any], title: str, name: str
) -> Path:
    names = list(runs)
    fig, (ap_ax, time_ax) = plt.subplots(1, 2, figsize=(10, 0.5 * len(names) + 2.2), sharey=True)
    for row, setting in enumerate(names):
        aps = [r["average_precision"] for r in runs[setting]]
        ap_ax.scatter(aps, [row] * len(aps), s=14, alpha=0.5, color=f"C{row}")
        ap_ax.plot(summary[setting]["mean_average_precision"], row, "k|", markersize=18)
        time_ax.barh(row, summary[setting]["median_fit_seconds"], color=f"C{row}")
    ap_ax.set_yticks(range(len(names)), names)
    ap_ax.set_xlabel("test AP per window x seed (bar: mean)")
    time_ax.set_xlabel("fit seconds (median)")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, default=HANDBOOK)
    parser.add_argument("--columns", choices=["native", "handbook"], default="handbook")
    parser.add_argument("--train-start", type=date.fromisoformat, default=date(2018, 7, 25))
    parser.add_argument("--feature-set", default="extended")
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--seeds", default="7,1,2,3", help="comma-separated")
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help=f"comma-separated of {list(SETTINGS)}"
    )
    parser.add_argument("--name", default="trainer_settings", help="the result files' name")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    chosen = list(dict.fromkeys(["current", *args.settings.split(",")]))
    unknown = [s for s in chosen if s not in SETTINGS]
    if unknown:
        parser.error(f"--settings {unknown} unknown; choose from {list(SETTINGS)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    def say(message: str) -> None:
        if not args.json:
            print(message, flush=True)

    history = read_history(args.history, columns=args.columns)
    feature_set = feature_set_by_name(args.feature_set).available_for(frozenset(history.columns))
    split = TimeSplit(train_start=args.train_start)
    folds = [split_history(history, s) for s in fold_splits(split, args.windows)]
    started = time.perf_counter()
    features = FoldFeatures.compute(feature_set, history, folds, progress=say)
    feature_seconds = time.perf_counter() - started
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    for window, data in enumerate(folds):
        for seed in seeds:
            for name in chosen:  # interleaved: load drifts hit every setting alike
                config = dataclasses.replace(TrainingConfig(seed=seed), **SETTINGS[name])
                fit_started = time.perf_counter()
                fitted, evaluation = fit_fold(features, data, config)
                seconds = time.perf_counter() - fit_started
                runs[name].append(
                    {
                        "window": data.split.describe()["test"],
                        "seed": seed,
                        **evaluation.metrics,  # rounded only in the output
                        "rounds": fitted.rounds,
                        # the searched parameters of the candidate chosen
                        "chosen": fitted.candidates[fitted.selection["chosen"] - 1]["params"],
                        "search_rows": fitted.search_rows,
                        "fit_seconds": round(seconds, 2),
                    }
                )
                ap = evaluation.metrics["average_precision"]
                where = f"window {window + 1}/{args.windows} seed {seed}"
                say(f"{where} {name}: AP {ap:.4f}, {fitted.rounds} rounds, {seconds:.1f} s")
    summary = {name: _summary(runs[name], runs["current"]) for name in chosen}
    title = (
        f"{args.history.name}, {feature_set.name} set: {args.windows} windows x {len(seeds)} seeds"
    )
    plot = _plot(runs, summary, title, args.name)
    write_result(
        args.name,
        {
            "history": str(args.history),
            "feature_set": feature_set.name,
            "windows": [d.split.describe()["test"] for d in folds],
            "seeds": seeds,
            "settings": {name: SETTINGS[name] for name in chosen},
            "feature_seconds": round(feature_seconds, 1),
            "summary": summary,
            "runs": {
                name: [{k: _rounded(v) for k, v in run.items()} for run in results]
                for name, results in runs.items()
            },
            "plot": str(plot),
            "seconds": round(time.perf_counter() - started),
        },
    )


if __name__ == "__main__":
    main()
