"""How good can any honest model be on the handbook's test window? (not a speed benchmark)

    .venv/bin/python bench/handbook_ceiling.py [--predictions PATH] [--json]

The handbook's simulator marks frauds three ways (``TX_FRAUD_SCENARIO``): amounts above
220 (1), every payment at a compromised terminal for 28 days (2), and a third of a
compromised customer's payments, with five times the amount, for 14 days (3). Scenario 2
payments look exactly like legitimate ones; the only trace is the terminal's *known* frauds,
and labels are known 7 days late. So a scenario-2 fraud is visible only when its
terminal's latest run of known frauds (the ``KnownFraudRun`` feature) is not empty.

Three rankings of the same test rows (the handbook protocol, train from 2018-07-25):
``oracle`` puts every fraud first; ``honest ceiling`` puts the visible frauds first and the
invisible ones among the legitimate payments, at random (median over ``--draws``); and,
with ``--predictions`` (``fraud train --predictions-out``), our model. Last line: JSON; a
plot of CP@100 per day goes to bench/results/handbook_ceiling.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
from datetime import date  # noqa: E402
from typing import Any  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from batch_training.dataset import TimeSplit, day_index, split_history  # noqa: E402
from batch_training.metrics import card_precision_at_k, cards_ranked_by_day  # noqa: E402
from feature_store.definitions import DAY_S, FeatureSet, KnownFraudRun  # noqa: E402
from feature_store.history import read_history  # noqa: E402
from feature_store.offline import offline_feature_matrix  # noqa: E402

HANDBOOK = HERE.parents[1] / "shared/datasets/handbook/transactions_raw.parquet"
RESULTS = HERE / "results"
_RUN = FeatureSet(
    name="ceiling",
    version=1,
    features=(KnownFraudRun(entity="merchant", measure="length", horizon_s=56 * DAY_S),),
)


def _ranking(
    name: str, scores: np.ndarray, labels: np.ndarray, days: np.ndarray, cards: np.ndarray
) -> dict[str, Any]:
    cp, per_day = card_precision_at_k(days, cards, scores, labels)
    return {
        "ranking": name,
        "average_precision": round(float(average_precision_score(labels, scores)), 4),
        "card_precision_at_100": round(cp, 4),
        "cp_per_day": [round(v, 2) for v in per_day],
    }


def _missed_visible(frame: pd.DataFrame, k: int = 100) -> list[dict[str, Any]]:
    """The visible fraud cards a ranking leaves out of a day's top k, as CP@k ranks them:
    where they ranked, and why they were visible."""
    visible = frame.groupby(["day", "card"])["visible"].max()
    missed: list[dict[str, Any]] = []
    days, cards = frame["day"].to_numpy(), frame["card"].to_numpy()
    scores, labels = frame["score"].to_numpy(), frame["fraud"].to_numpy()
    for day, ranked in cards_ranked_by_day(days, cards, scores, labels, k):
        ranked = ranked.assign(rank=np.arange(1, len(ranked) + 1))
        below = ranked[visible.loc[day].reindex(ranked.index).to_numpy() & (ranked["rank"] > k)]
        for card, row in zip(below.index.to_numpy(), below.to_dict("records"), strict=True):
            frauds = frame[(frame["day"] == day) & (frame["card"] == card) & (frame["fraud"] == 1)]
            missed.append(
                {
                    "day": int(day),
                    "card": int(card),
                    "rank": int(row["rank"]),
                    "score": round(float(row["score"]), 4),
                    "kth_score": round(float(ranked["score"].head(k).iloc[-1]), 4),
                    "scenario": sorted(set(frauds["scenario"])),
                    "amounts": [round(float(a), 2) for a in frauds["amount"]],
                    "known_fraud_run": [int(r) for r in frauds["run"]],
                }
            )
    return missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--history", type=Path, default=HANDBOOK)
    parser.add_argument("--predictions", type=Path, help="fraud train --predictions-out file")
    parser.add_argument(
        "--draws", type=int, default=21, help="random placements to take the median of"
    )
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()

    history = read_history(args.history, columns="handbook")
    test = split_history(history, TimeSplit(train_start=date(2018, 7, 25))).test
    labels = history["is_fraud"].to_numpy(dtype=np.int8)[test]
    scenario = history["fraud_scenario"].to_numpy()[test]
    days = day_index(history)[test]
    cards = history["card_id"].to_numpy()[test]
    run = offline_feature_matrix(_RUN, history, test)[:, 0]
    visible = (labels == 1) & ((scenario != "compromised_terminal") | (run > 0))

    rankings = [_ranking("oracle", labels.astype(float), labels, days, cards)]
    rng = np.random.default_rng(0)
    draws = [
        _ranking("honest ceiling", visible + 0.5 * rng.random(len(labels)), labels, days, cards)
        for _ in range(args.draws)
    ]
    by_cp = sorted(draws, key=lambda r: r["card_precision_at_100"])
    rankings.append(by_cp[len(by_cp) // 2])
    if args.predictions is not None:
        predicted = pd.read_parquet(args.predictions).set_index("transaction_id")["score"]
        ids = history["transaction_id"].to_numpy()[test]
        ours = predicted.loc[ids].to_numpy()
        rankings.append(_ranking("ours", ours, labels, days, cards))
        frame = pd.DataFrame(
            {
                "day": days,
                "card": cards,
                "score": ours,
                "fraud": labels,
                "visible": visible,
                "scenario": scenario,
                "amount": history["amount"].to_numpy()[test],
                "run": run,
            }
        )
        missed = _missed_visible(frame)
    result = {
        "test_rows": len(test),
        "frauds": int(labels.sum()),
        "frauds_by_scenario": {
            str(s): int(((scenario == s) & (labels == 1)).sum())
            for s in ("amount_over_220", "compromised_terminal", "compromised_customer")
        },
        "terminal_frauds_invisible": int(((labels == 1) & ~visible).sum()),
        "rankings": rankings,
    }
    if args.predictions is not None:
        result["ours_missed_visible"] = missed
    RESULTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for r in rankings:
        ax.plot(
            range(1, len(r["cp_per_day"]) + 1),
            r["cp_per_day"],
            marker="o",
            label=f"{r['ranking']} (mean {r['card_precision_at_100']:.3f})",
        )
    ax.set_xlabel("test day (2018-08-08 = 1)")
    ax.set_ylabel("card precision@100")
    ax.set_title("Handbook test window: what an honest model can reach")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "handbook_ceiling.png", dpi=110)
    if not args.json:
        for r in rankings:
            print(
                f"{r['ranking']:>15}: AP {r['average_precision']:.3f}  "
                f"CP@100 {r['card_precision_at_100']:.3f}"
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
