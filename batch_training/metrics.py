"""Evaluation: ranking quality, what analysts see (card precision@k), and money.

Cost model (documented in the README): a missed fraud costs its amount; each review
costs ``review_fee``; declining a legitimate payment costs ``decline_fee``; a declined or
reviewed fraud costs only the fee of that action.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from batch_training.errors import TrainingConfigError

__all__ = [
    "CardPrecisionDay",
    "CostModel",
    "DecisionOutcome",
    "card_precision_at_k",
    "card_precision_by_day",
    "cards_ranked_by_day",
    "choose_cost_thresholds",
    "cost_curves",
    "costs_by_threshold",
    "decision_outcome",
    "recall_at_alert_rate",
    "summary_metrics",
]

# even score steps of a cost curve, over the top tenth of the scores
_CURVE_STEPS = 200


@dataclass(frozen=True, kw_only=True)
class CostModel:
    review_fee: float = 5.0
    decline_fee: float = 25.0

    def __post_init__(self) -> None:
        for name in ("review_fee", "decline_fee"):
            fee = getattr(self, name)
            # a negative fee would make acting pay for itself: every payment flagged
            if not (math.isfinite(fee) and fee >= 0):
                raise TrainingConfigError(
                    f"{name}={fee} must be a finite amount >= 0 "
                    f"(--{name.replace('_', '-')}), e.g. {getattr(CostModel, name)}"
                )


@dataclass(frozen=True)
class CardPrecisionDay:
    """One test day's card precision@k, and the most that day allowed: the share of k
    that its compromised cards not found on earlier days fill."""

    day: int  # days since 1970-01-01 (UTC)
    precision: float
    ceiling: float

    @property
    def calendar_day(self) -> date:
        return date(1970, 1, 1) + timedelta(days=self.day)


def card_precision_by_day(
    days: np.ndarray, cards: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 100
) -> list[CardPrecisionDay]:
    """The share of compromised cards among each day's k highest-scored cards, ranked as
    :func:`cards_ranked_by_day` ranks them (the handbook's definition)."""
    return [
        CardPrecisionDay(
            day=int(day),
            precision=int((ranked["fraud"].head(k) == 1).sum()) / k,
            ceiling=min(k, int((ranked["fraud"] == 1).sum())) / k,
        )
        for day, ranked in cards_ranked_by_day(days, cards, scores, labels, k)
    ]


def card_precision_at_k(
    days: np.ndarray, cards: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 100
) -> tuple[float, list[float]]:
    """Mean over days of :func:`card_precision_by_day`, and each day's."""
    per_day = card_precision_by_day(days, cards, scores, labels, k)
    return _mean_precision(per_day), [d.precision for d in per_day]


def _mean_precision(per_day: list[CardPrecisionDay]) -> float:
    return float(np.mean([d.precision for d in per_day])) if per_day else 0.0


def cards_ranked_by_day(
    days: np.ndarray, cards: np.ndarray, scores: np.ndarray, labels: np.ndarray, k: int = 100
) -> Iterator[tuple[Any, pd.DataFrame]]:
    """Each day and its cards (index) with their highest ``score`` and ``fraud`` (max
    label), best first; compromised cards among an earlier day's top k are left out."""
    frame = pd.DataFrame({"day": days, "card": cards, "score": scores, "fraud": labels})
    detected: set[object] = set()
    for day, on_day in frame.groupby("day", sort=True):
        on_day = on_day[~on_day["card"].isin(detected)]
        by_card = on_day.groupby("card").agg(score=("score", "max"), fraud=("fraud", "max"))
        ranked = by_card.sort_values("score", ascending=False, kind="stable")
        yield day, ranked
        top = ranked.head(k)
        detected.update(top.index[top["fraud"] == 1].tolist())


def recall_at_alert_rate(scores: np.ndarray, labels: np.ndarray, alert_rate: float) -> float:
    """Share of frauds among the top ``alert_rate`` of transactions by score."""
    if labels.sum() == 0:
        return 0.0
    n_alerts = max(1, round(alert_rate * len(scores)))
    top = np.argsort(-scores, kind="stable")[:n_alerts]
    return float(labels[top].sum() / labels.sum())


@dataclass(frozen=True)
class DecisionOutcome:
    """What a review and a decline threshold do to a set of payments, and what it costs."""

    payments: int
    frauds: int
    fraud_amount: float  # what taking no action costs: every fraud missed
    reviewed: int  # reviewed and not declined
    frauds_reviewed: int
    declined: int
    frauds_declined: int
    declined_fraud_amount: float
    reviewed_fraud_amount: float
    missed_fraud_amount: float
    fees: CostModel

    @property
    def frauds_passed(self) -> int:
        return self.frauds - self.frauds_declined - self.frauds_reviewed

    @property
    def legitimate_declined(self) -> int:
        return self.declined - self.frauds_declined

    @property
    def cost(self) -> float:
        return (
            self.missed_fraud_amount
            + self.fees.review_fee * self.reviewed
            + self.fees.decline_fee * self.legitimate_declined
        )


def decision_outcome(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    review: float,
    decline: float,
    cost: CostModel,
) -> DecisionOutcome:
    """Scores at or above ``decline`` are declined; the others at or above ``review`` are
    reviewed; the rest pass."""
    fraud = labels == 1
    # as float64: against a Python float float32 scores compare in float32, where the
    # "never act" threshold just above 1.0 rounds to 1.0
    declined = scores >= np.float64(decline)
    reviewed = (scores >= np.float64(review)) & ~declined
    missed = fraud & ~declined & ~reviewed
    return DecisionOutcome(
        payments=len(scores),
        frauds=int(fraud.sum()),
        fraud_amount=float(amounts[fraud].sum()),
        reviewed=int(reviewed.sum()),
        frauds_reviewed=int((reviewed & fraud).sum()),
        declined=int(declined.sum()),
        frauds_declined=int((declined & fraud).sum()),
        missed_fraud_amount=float(amounts[missed].sum()),
        fees=cost,
        declined_fraud_amount=float(amounts[declined & fraud].sum()),
        reviewed_fraud_amount=float(amounts[reviewed & fraud].sum()),
    )


def costs_by_threshold(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    review: np.ndarray,
    decline: np.ndarray,
    cost: CostModel,
    *,
    max_reviews: float = math.inf,
) -> np.ndarray:
    """The cost of every (``review[i]``, ``decline[j]``) pair, as :func:`decision_outcome`
    counts it; inf where ``review[i] > decline[j]`` (no policy reviews above its decline)
    and where the pair would review more than ``max_reviews`` payments.

    One sort and suffix sums: on a 254k-row validation slice the 60 x 60 grid of the
    threshold choice takes milliseconds, where a pass over the rows per pair took 1.5 s.
    """
    order = np.argsort(scores, kind="stable")
    ascending = scores[order]
    fraud_amount = np.where(labels[order] == 1, amounts[order], 0.0)
    # [i]: the sum over the rows from position i of the ascending order to the top
    legitimate_from = np.concatenate([np.cumsum(labels[order][::-1] != 1)[::-1], [0]])
    fraud_amount_from = np.concatenate([np.cumsum(fraud_amount[::-1])[::-1], [0.0]])

    def at_or_above(thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Payments, legitimate payments and fraud amount scoring >= each threshold."""
        first = np.searchsorted(ascending, thresholds, side="left")
        return len(scores) - first, legitimate_from[first], fraud_amount_from[first]

    reviewable, _, caught_amount = at_or_above(np.asarray(review, dtype=np.float64))
    declinable, declined_legitimate, _ = at_or_above(np.asarray(decline, dtype=np.float64))
    missed = fraud_amount.sum() - caught_amount
    costs: np.ndarray = (missed + cost.review_fee * reviewable)[:, None] + (
        cost.decline_fee * declined_legitimate - cost.review_fee * declinable
    )[None, :]
    costs[np.asarray(review)[:, None] > np.asarray(decline)[None, :]] = np.inf
    costs[(reviewable[:, None] - declinable[None, :]) > max_reviews] = np.inf
    return costs


def cost_curves(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    cost: CostModel,
    through: tuple[float, ...] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds over the top tenth of ``scores``, and at each the cost of declining at
    it (never reviewing) and of reviewing at it (never declining), for a plot.

    The thresholds are score quantiles and even score steps, plus ``through``: quantiles
    alone leave wide gaps where scores are sparse (on the handbook nothing between 0.05
    and 0.92, where 119 test payments lie), and a line drawn across such a gap misstates
    the cost there.
    """
    quantiles = np.quantile(scores, np.linspace(0.9, 1.0, 50))
    low = float(quantiles[0])
    steps = np.linspace(low, 1.0, _CURVE_STEPS)
    extra = np.asarray([t for t in through if low <= t <= 1.0], dtype=np.float64)
    grid = np.unique(np.concatenate([quantiles, steps, extra]))
    by_pair = costs_by_threshold(scores, labels, amounts, grid, np.append(grid, math.inf), cost)
    return grid, np.diagonal(by_pair).copy(), by_pair[:, -1].copy()


def choose_cost_thresholds(
    scores: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    cost: CostModel,
    *,
    grid: int = 60,
    max_reviews: float = math.inf,
) -> tuple[float, float, float]:
    """(review, decline, cost) minimising the cost over a grid of score quantiles, among
    the pairs that review at most ``max_reviews`` payments; on a tie the lowest review
    threshold, then the lowest decline threshold. Pairs with review = decline review
    nothing, so some pair always qualifies."""
    candidates = np.unique(np.quantile(scores, np.linspace(0.9, 1.0, grid)))
    candidates = np.unique(np.concatenate([candidates, [1.0 + 1e-9]]))
    if math.isfinite(max_reviews):
        candidates = np.unique(
            np.concatenate([candidates, _capacity_edges(scores, candidates, max_reviews)])
        )
    costs = costs_by_threshold(
        scores, labels, amounts, candidates, candidates, cost, max_reviews=max_reviews
    )
    # Costs equal but for rounding (suffix sums against fee x count) count as a tie.
    cheapest = costs <= costs.min() * (1 + 1e-12) + 1e-9
    review, decline = np.unravel_index(int(np.argmax(cheapest)), costs.shape)  # row-major
    return float(candidates[review]), float(candidates[decline]), float(costs[review, decline])


def _capacity_edges(scores: np.ndarray, declines: np.ndarray, max_reviews: float) -> np.ndarray:
    """Review thresholds that fill the capacity below each decline threshold.

    The quantile grid's steps hold about 1/600 of the rows each, coarser than a small
    capacity: below each decline threshold, the score of the last payment that still fits
    in ``max_reviews``, and the next value above it (in case ties there overflow).
    """
    descending = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    declined = len(scores) - np.searchsorted(descending[::-1], declines, side="left")
    last = declined + int(min(max_reviews, len(scores))) - 1
    edges = descending[last[(last >= declined) & (last < len(scores))]]
    return np.concatenate([edges, np.nextafter(edges, np.inf)])


def summary_metrics(
    *,
    scores: np.ndarray,
    labels: np.ndarray,
    days: np.ndarray,
    cards: np.ndarray,
    alert_rate: float,
) -> tuple[dict[str, float], list[CardPrecisionDay]]:
    """The headline metrics, and card precision@100 per test day (for the report)."""
    both = 0 < labels.sum() < len(labels)
    per_day = card_precision_by_day(days, cards, scores, labels, k=100)
    cp = _mean_precision(per_day)
    metrics = {
        "roc_auc": float(roc_auc_score(labels, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(labels, scores))
        if both
        else float("nan"),
        "card_precision_at_100": cp,
        "recall_at_alert_rate": recall_at_alert_rate(scores, labels, alert_rate),
    }
    return metrics, per_day
