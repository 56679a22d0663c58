"""Where a training run's time goes, and what the trainer's speed settings buy.

    .venv/bin/python bench/training.py [--cards N --merchants M --days D] [--history PATH]
        [--feature-set core|extended] [--repeats R] [--json]

Simulates a history (or reads ``--history``), then runs the whole pipeline (split,
features, training, evaluation, gate, report) alternately with two trainer settings:
``current`` (validation scored every 4 rounds, candidates screened after 376 rounds, the
search on a 400k-row sample of a large window) and ``former`` (scored every round, every
candidate trained to its early stop on every row, as before; both with the current round
budget). Same machine, same run, interleaved: compare the ratio, not the seconds. Reports
the median of each stage over ``--repeats``; last line: JSON, also written to
bench/results/training.json next to a bar plot, training.png.
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
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from batch_training.pipeline import PipelineOptions, run_training  # noqa: E402
from batch_training.registry import ModelRegistry  # noqa: E402
from batch_training.train import TrainingConfig  # noqa: E402
from feature_store import feature_set_by_name, read_history  # noqa: E402
from simulator import SimulationConfig, TrafficGenerator  # noqa: E402

RESULTS = HERE / "results"
SETTINGS = {
    "current": TrainingConfig(),
    "former": TrainingConfig(validation_every=1, screen_rounds=1 << 30, search_rows=1 << 40),
}
STAGES = ("features", "training", "gate", "report")  # run_training's stage_seconds


def _timed_run(history: pd.DataFrame, feature_set: str, training: TrainingConfig) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as registry:
        run = run_training(
            history,
            registry=ModelRegistry(Path(registry)),
            options=PipelineOptions(
                feature_set=feature_set_by_name(feature_set), training=training
            ),
        )
    return {
        "seconds": {**run.stage_seconds, "total": run.seconds},
        "average_precision": run.metadata.metrics["average_precision"],
        "rounds": run.metadata.extra["rounds"],
        "train_rows": run.train_rows,
    }


def _plot(medians: dict[str, dict[str, float]], title: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    for row, seconds in enumerate(medians.values()):
        left = 0.0
        for i, stage in enumerate(STAGES):
            ax.barh(row, seconds[stage], left=left, color=f"C{i}", label=None if row else stage)
            left += seconds[stage]
    ax.set_yticks(range(len(medians)), list(medians))
    ax.set_xlabel("seconds (median)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = RESULTS / "training.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=12_000)
    parser.add_argument("--merchants", type=int, default=600)
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--history", type=Path, default=None)
    parser.add_argument("--feature-set", default="core")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    if args.history is not None:
        history = read_history(args.history)
        source = str(args.history)
    else:
        generator = TrafficGenerator(
            SimulationConfig(cards=args.cards, merchants=args.merchants, seed=7)
        )
        history = generator.history(start=datetime(2026, 1, 1, tzinfo=UTC), days=args.days)
        source = f"simulated {args.cards} cards, {args.merchants} merchants, {args.days} days"
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SETTINGS}
    for repeat in range(args.repeats):
        for name, training in SETTINGS.items():  # interleaved: load drifts hit both
            runs[name].append(_timed_run(history, args.feature_set, training))
            if not args.json:
                seconds = runs[name][-1]["seconds"]["total"]
                print(f"repeat {repeat + 1}/{args.repeats} {name}: {seconds:.1f} s", flush=True)
    medians = {
        name: {
            stage: statistics.median(r["seconds"][stage] for r in results)
            for stage in results[0]["seconds"]
        }
        for name, results in runs.items()
    }
    plot = _plot(medians, f"{len(history):,} rows, {args.feature_set} set")
    result = {
        "history": source,
        "rows": len(history),
        "train_rows": runs["current"][0]["train_rows"],
        "feature_set": args.feature_set,
        "repeats": args.repeats,
        "median_seconds": {n: {k: round(v, 1) for k, v in m.items()} for n, m in medians.items()},
        "training_speedup": round(
            medians["former"]["training"] / medians["current"]["training"], 2
        ),
        "average_precision": {
            n: [round(r["average_precision"], 4) for r in results] for n, results in runs.items()
        },
        "rounds": {n: [r["rounds"] for r in results] for n, results in runs.items()},
        "plot": str(plot.relative_to(HERE.parent)),
    }
    line = json.dumps(result)
    (RESULTS / "training.json").write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
