"""Inference benchmark: XGBoost's inplace_predict and DMatrix predict against the compiled model.

    .venv/bin/python bench/inference.py [--json] [--quick] [--runs 5]

Models are trained by the repo's own pipeline (``run_training``) on the core feature set of
a simulated population: the trainer's default configuration (early-stopped, tens of trees)
and, unless ``--quick``, the same trainer at learning rate 0.02 (hundreds of trees). The
rows scored are the offline features of the most recent days of that history (real missing
values included). Per batch size and backend, each run takes the median of many calls; the
result is the median over ``--runs`` runs (the spread is reported too: the machine is a noisy
2-core one). Compile time is that of a fresh build. Last line: JSON; plot in bench/results.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where bench/stream.py would shadow the
# ``stream`` package: take that folder off the path first (as bench/stream.py does).
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402

from batch_training.pipeline import PipelineOptions, run_training  # noqa: E402
from batch_training.registry import ModelRegistry  # noqa: E402
from batch_training.train import TrainingConfig  # noqa: E402
from feature_store import CORE_FEATURE_SET, compute_offline_features  # noqa: E402
from simulator import SimulationConfig, TrafficGenerator  # noqa: E402
from stream.compiled import CompileOptions, compile_booster  # noqa: E402
from stream.scoring import load_serving_model  # noqa: E402

BATCH_SIZES = (1, 8, 64, 256, 1024)
CALLS = {1: 200, 8: 200, 64: 100, 256: 40, 1024: 15}  # per run: ~tens of ms per backend
Scorer = Callable[[np.ndarray], np.ndarray]


_START = datetime(2025, 1, 1, tzinfo=UTC)


def _history() -> pd.DataFrame:
    generator = TrafficGenerator(SimulationConfig(cards=5_000, merchants=500, seed=3))
    return generator.history(start=_START, days=14)


def _train(history: pd.DataFrame, root: Path, training: TrainingConfig) -> ModelRegistry:
    registry = ModelRegistry(root)
    run_training(
        history,
        registry=registry,
        options=PipelineOptions(
            feature_set=CORE_FEATURE_SET,
            train_start=_START,  # complete simulated labels: test on the last days
            train_days=8,
            delay_days=2,
            test_days=4,
            training=training,
        ),
    )
    return registry


def _rows(history: pd.DataFrame, registry: ModelRegistry, n: int) -> np.ndarray:
    """Features of the last ``n`` transactions, in the model's column order, shuffled."""
    names = registry.load_champion().metadata.feature_names
    features = compute_offline_features(CORE_FEATURE_SET.select(names), history)
    recent = features.to_numpy(dtype=np.float64)[-n:]
    return recent[np.random.default_rng(0).permutation(len(recent))]


def _median_us(score: Scorer, rows: np.ndarray, size: int, calls: int, offset: int) -> float:
    samples = []
    for i in range(calls):
        start = (offset + i * size) % (len(rows) - size + 1)
        batch = rows[start : start + size]
        t0 = time.perf_counter()
        score(batch)
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples)) * 1e6


def _measure(scorers: dict[str, Scorer], rows: np.ndarray, runs: int) -> dict[str, Any]:
    """Median µs per batch over ``runs`` runs; backends alternate, their order rotating."""
    per_run: dict[str, dict[int, list[float]]] = {n: {s: [] for s in BATCH_SIZES} for n in scorers}
    names = list(scorers)
    for run in range(runs):
        for size in BATCH_SIZES:
            for k in range(len(names)):
                name = names[(run + k) % len(names)]
                scorers[name](rows[:size])  # warm: lazy set-up is not what serving sees
                per_run[name][size].append(
                    _median_us(scorers[name], rows, size, CALLS[size], offset=run * 7919)
                )
    return {
        "us_per_batch": {
            name: {str(s): round(float(np.median(v)), 1) for s, v in sizes.items()}
            for name, sizes in per_run.items()
        },
        "us_per_row": {
            name: {str(s): round(float(np.median(v)) / s, 2) for s, v in sizes.items()}
            for name, sizes in per_run.items()
        },
        "run_spread_us": {
            name: {str(s): [round(min(v), 1), round(max(v), 1)] for s, v in sizes.items()}
            for name, sizes in per_run.items()
        },
    }


def _bench_model(
    label: str, history: pd.DataFrame, training: TrainingConfig, rows_n: int, runs: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-inference-{label}-") as tmp:
        return _bench_model_in(Path(tmp), history, training, rows_n, runs)


def _bench_model_in(
    work: Path, history: pd.DataFrame, training: TrainingConfig, rows_n: int, runs: int
) -> dict[str, Any]:
    registry = _train(history, work / "registry", training)
    loaded = registry.load_champion()
    booster = loaded.booster
    rows = _rows(history, registry, rows_n)
    fresh = CompileOptions(cache_dir=work / "compiled")
    one = compile_booster(booster, model_sha256=loaded.metadata.model_sha256, options=fresh)
    cached_at = time.perf_counter()
    served = load_serving_model(registry, compile_options=fresh)  # the cache, then the chooser
    load_s = time.perf_counter() - cached_at
    two = compile_booster(
        booster,
        model_sha256=loaded.metadata.model_sha256,
        options=CompileOptions(cache_dir=work / "compiled", predict_threads=2),
    )
    names = list(loaded.metadata.feature_names)

    def inplace(batch: np.ndarray) -> np.ndarray:
        return np.asarray(booster.inplace_predict(batch))

    def dmatrix(batch: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(xgb.DMatrix(batch, feature_names=names)))

    scorers: dict[str, Scorer] = {
        "inplace_predict": inplace,
        "predict_dmatrix": dmatrix,
        "compiled": one.predict,
        "compiled_2_threads": two.predict,
    }
    expected = inplace(rows)
    diffs = {n: float(np.max(np.abs(f(rows) - expected))) for n, f in scorers.items()}
    choice = served.choice
    measured = _measure(scorers, rows, runs)
    per_batch = measured["us_per_batch"]
    return {
        "trees": booster.num_boosted_rounds(),
        "rows_with_missing": round(float(np.isnan(rows).any(axis=1).mean()), 3),
        "compile_s": round(one.build_s or 0.0, 2),
        "translation_units": one.units,
        "cached_load_and_choose_s": round(load_s, 2),
        "max_abs_diff_vs_inplace": diffs,
        # what the worker's chooser picked at this load (one timing, at load: noise included)
        "served_choice": (
            {str(n): served.backend_for(n) for n in BATCH_SIZES} if choice is not None else None
        ),
        # the faster of the two served backends by this benchmark's medians
        "fastest_served": {
            str(n): min(("inplace_predict", "compiled"), key=lambda b: per_batch[b][str(n)])
            for n in BATCH_SIZES
        },
        **measured,
    }


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = result["models"]
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4 * len(models)), squeeze=False)
    for row, (label, model) in zip(axes, models.items(), strict=True):
        for ax, key, unit in (
            (row[0], "us_per_batch", "µs per batch"),
            (row[1], "us_per_row", "µs per row"),
        ):
            for backend, values in model[key].items():
                sizes = [int(s) for s in values]
                ax.plot(sizes, list(values.values()), marker="o", label=backend)
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="batch size (rows)",
                ylabel=f"{unit} (median)",
                title=f"{label}: {model['trees']} trees, compiled in {model['compile_s']} s",
            )
            ax.grid(True, which="both", alpha=0.3)
        row[0].legend()
    fig.suptitle(f"Scoring one batch, {result['machine']['cores']} cores")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--quick", action="store_true", help="the default model only, 2 runs")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plot", type=Path, default=HERE / "results" / "inference.png")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    history = _history()
    configs = {"trainer_default": TrainingConfig()}
    if not args.quick:
        # the same trainer learning slowly: hundreds of trees, the compile-time worst case
        configs["trainer_lr_0.02"] = TrainingConfig(
            learning_rate=0.02, max_rounds=600, early_stopping_rounds=600
        )
    result: dict[str, Any] = {
        "machine": {"cores": os.cpu_count()},
        "runs": runs,
        "batch_sizes": list(BATCH_SIZES),
        "models": {
            label: _bench_model(label, history, training, 4096, runs)
            for label, training in configs.items()
        },
    }
    _plot(result, args.plot)
    if not args.json:
        print(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
