"""Evaluation: ranking quality, what analysts see (card precision@k), and money.

Cost model (documented in the README): a missed fraud costs its amount; each review
costs ``review_fee``; declining a legitimate payment costs ``decline_fee``; a declined or
reviewed fraud costs only the fee of that action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = [
    "CostModel",
    "card_precision_at_k",
    "choose_cost_thresholds",
    "decision_cost",
    "recall_at_alert_rate",
    "summary_metrics",
]


@dataclass(frozen=True, kw_only=True)
class CostModel:
    review_fee: float = 5.0
    decline_fee: float = 25.0


def card_precision_at_k(
    days: np.ndarray, cards: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 100
) -> tuple[float, list[float]]:
    """Mean over days of the share of compromised cards among the k highest-scored cards.

    Each card is ranked by its highest score of the day; cards found compromised on an
    earlier day are removed from later days (the handbook's definition).
    """
    frame = pd.DataFrame({"day": days, "card": cards, "score": scores, "fraud": labels})
    detected: set[object] = set()
    per_day: list[float] = []
    for _, on_day in frame.groupby("day", sort=True):
        on_day = on_day[~on_day["card"].isin(detected)]
        by_card = on_day.groupby("card").agg(score=("score", "max"), fraud=("fraud", "max"))
        top = by_card.sort_values("score", ascending=False, kind="stable").head(k)
        found = top.index[top["fraud"] == 1]
        per_day.append(len(found) / k)
        detected.update(found.tolist())
    return (float(np.mean(per_day)) if per_day else 0.0), per_day


def recall_at_alert_rate(scores: np.ndarray, labels: np.ndarray, alert_rate: float) -> float:
    """Share of frauds among the top ``alert_rate`` of transactions by score."""
    if labels.sum() == 0:
        return 0.0
    n_alerts = max(1, round(alert_rate * len(scores)))
    top = np.argsort(-scores, kind="stable")[:n_alerts]
    return float(labels[top].sum() / labels.sum())


def decision_cost(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    review: float,
    decline: float,
    cost: CostModel,
) -> float:
    declined = scores >= decline
    reviewed = (scores >= review) & ~declined
    missed = (scores < review) & (labels == 1)
    return float(
        amounts[missed].sum()
        + cost.review_fee * reviewed.sum()
        + cost.decline_fee * (declined & (labels == 0)).sum()
    )


def choose_cost_thresholds(
    scores: np.ndarray, labels: np.ndarray, amounts: np.ndarray, cost: CostModel, *, grid: int = 60
) -> tuple[float, float, float]:
    """(review, decline, cost) minimising the cost over a grid of score quantiles."""
    candidates = np.unique(np.quantile(scores, np.linspace(0.9, 1.0, grid)))
    candidates = np.unique(np.concatenate([candidates, [1.0 + 1e-9]]))
    best = (float(candidates[-1]), float(candidates[-1]), float("inf"))
    for i, review in enumerate(candidates):
        for decline in candidates[i:]:
            c = decision_cost(scores, labels, amounts, review, decline, cost)
            if c < best[2]:
                best = (float(review), float(decline), c)
    return best


def summary_metrics(
    *,
    scores: np.ndarray,
    labels: np.ndarray,
    days: np.ndarray,
    cards: np.ndarray,
    alert_rate: float,
) -> tuple[dict[str, float], list[float]]:
    """The headline metrics, and card precision@100 per test day (for the report)."""
    both = 0 < labels.sum() < len(labels)
    cp, per_day = card_precision_at_k(days, cards, scores, labels, k=100)
    metrics = {
        "roc_auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(labels, scores))
        if both
        else float("nan"),
        "card_precision_at_100": cp,
        "recall_at_alert_rate": recall_at_alert_rate(scores, labels, alert_rate),
    }
    return metrics, per_day
