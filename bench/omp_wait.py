"""What OpenMP's wait policy does to a training run, as the machine is and beside a busy core.

    .venv/bin/python bench/omp_wait.py [--history PATH] [--columns handbook|native]
        [--feature-set core|extended] [--repeats R] [--short-spin N] [--json]

XGBoost's threads (libgomp, bundled with its wheel) spin between parallel regions by
default: on a core another process also wants, a spinning thread burns the time slice the
thread it waits for needs (dmlc/xgboost#8729: 10 s to minutes beside `stress -c 1`).
``OMP_WAIT_POLICY=PASSIVE`` makes them sleep instead. This runs ``fraud train --json`` on
the handbook (default) with libgomp's default (``GOMP_SPINCOUNT=300000``) and with
``fraud``'s own (``PASSIVE``, set by the executable when neither is), each as the machine is
and beside one more busy process (a core occupied, as by another job), interleaved, and reports the
median wall time and training stage of each; compare the ratios, not the seconds. The
model is checked to be the same under all (threads change scheduling, not results).
``--short-spin N`` adds a third: spin N iterations, then sleep (``GOMP_SPINCOUNT=N``).
Last line: JSON, also written to bench/results/omp_wait.json next to omp_wait.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.results_files import save_figure, write_result  # noqa: E402

HANDBOOK = HERE.parents[1] / "shared" / "datasets" / "handbook" / "transactions_raw.parquet"
FRAUD = Path(sys.executable).with_name("fraud")
SPIN, SLEEP = "libgomp's default (spin)", "fraud's default (PASSIVE)"
# what libgomp spins when OMP_WAIT_POLICY is unset (its documentation: 300,000)
LIBGOMP_DEFAULT_SPINCOUNT = "300000"
LOADS = ("as the machine was", "plus one busy core")


@contextlib.contextmanager
def _busy_core(on: bool) -> Iterator[None]:
    """One process spinning on a core for as long as the block runs."""
    if not on:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def _policies(short_spin: int | None) -> dict[str, str | None]:
    """Each policy's GOMP_SPINCOUNT; None: `fraud`'s own default (PASSIVE when neither
    OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set)."""
    policies: dict[str, str | None] = {SPIN: LIBGOMP_DEFAULT_SPINCOUNT, SLEEP: None}
    if short_spin is not None:
        policies[f"short spin ({short_spin:,})"] = str(short_spin)
    return policies


def _train(args: argparse.Namespace, spin_count: str | None, registry: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    if spin_count is not None:
        env["GOMP_SPINCOUNT"] = spin_count
    command = [str(FRAUD), "train", "--history", str(args.history), "--registry", str(registry)]
    command += ["--columns", args.columns, "--feature-set", args.feature_set, "--json"]
    if args.train_start:
        command += ["--train-start", args.train_start]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"fraud train failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    model_file = registry / "versions" / str(result["model_version"]) / "model.ubj"
    return {
        "wall_s": wall,
        "training_s": result["stage_seconds"]["training"],
        "model": hashlib.sha256(model_file.read_bytes()).hexdigest(),
        "ap": result["metrics"]["average_precision"],
    }


def _plot(medians: dict[str, dict[str, dict[str, float]]], title: str) -> Path:
    policies = list(medians[LOADS[0]])
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(policies)
    for i, policy in enumerate(policies):
        values = [medians[load][policy]["wall_s"] for load in LOADS]
        offset = (i - (len(policies) - 1) / 2) * width
        bars = ax.bar([x + offset for x in range(len(LOADS))], values, width)
        bars.set_label(policy)
        ax.bar_label(bars, fmt="%.1f s")
    ax.set_xticks(range(len(LOADS)), LOADS)
    ax.set_ylabel("fraud train, wall seconds (median)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    return save_figure(fig, "omp_wait")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=Path, default=HANDBOOK)
    parser.add_argument("--columns", default="handbook")
    parser.add_argument("--train-start", default="2018-07-25")
    parser.add_argument("--feature-set", default="extended")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--short-spin", type=int, help="also GOMP_SPINCOUNT=N (then sleep)")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    policies = _policies(args.short_spin)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        load: {policy: [] for policy in policies} for load in LOADS
    }
    for repeat in range(args.repeats):
        for load in LOADS:
            order = list(policies) if repeat % 2 == 0 else list(policies)[::-1]
            for policy in order:
                with tempfile.TemporaryDirectory() as registry, _busy_core(load != LOADS[0]):
                    run = _train(args, policies[policy], Path(registry))
                runs[load][policy].append(run)
                if not args.json:
                    print(
                        f"{load:>18} {policy:>26}: {run['wall_s']:.1f} s wall, "
                        f"training {run['training_s']:.1f} s",
                        file=sys.stderr,
                    )
    models = {run["model"] for by_load in runs.values() for rs in by_load.values() for run in rs}
    medians = {
        load: {
            policy: {
                key: round(statistics.median(run[key] for run in rs), 2)
                for key in ("wall_s", "training_s")
            }
            for policy, rs in by_policy.items()
        }
        for load, by_policy in runs.items()
    }
    ratios = {  # each policy's wall time over fraud's default, per load
        load: {
            policy: round(medians[load][policy]["wall_s"] / medians[load][SLEEP]["wall_s"], 2)
            for policy in policies
            if policy != SLEEP
        }
        for load in LOADS
    }
    title = (
        f"{args.history.name}, {args.feature_set}, {args.repeats} runs each, "
        f"{os.cpu_count()} cores, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    result = {
        "benchmark": "omp_wait",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "history": args.history.name,
        "feature_set": args.feature_set,
        "repeats": args.repeats,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "medians": medians,
        "wall_over_passive": ratios,
        "same_model_under_all": len(models) == 1,
        "plot": str(_plot(medians, title)),
    }
    write_result("omp_wait", result)


if __name__ == "__main__":
    main()
