"""The cost model: what thresholds do to payments, and the thresholds that cost least."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from batch_training.metrics import (
    CostModel,
    choose_cost_thresholds,
    cost_curves,
    costs_by_threshold,
    decision_outcome,
)
from batch_training.model_metadata import NEVER_ACT

FEES = CostModel(review_fee=5.0, decline_fee=25.0)


def test_each_payment_is_declined_reviewed_or_passed_and_costed() -> None:
    scores = np.array([0.125, 0.25, 0.5, 0.625, 0.875, 1.0], dtype=np.float32)  # exact
    labels = np.array([0, 1, 0, 1, 0, 1], dtype=np.int8)
    amounts = np.array([10.0, 40.0, 20.0, 300.0, 50.0, 700.0])
    outcome = decision_outcome(scores, labels, amounts, 0.5, 0.875, FEES)
    assert (outcome.declined, outcome.frauds_declined, outcome.legitimate_declined) == (2, 1, 1)
    assert (outcome.reviewed, outcome.frauds_reviewed) == (2, 1)
    assert (outcome.frauds, outcome.fraud_amount, outcome.missed_fraud_amount) == (3, 1040.0, 40.0)
    # the missed fraud's 40, two reviews at 5, one legitimate payment declined at 25
    assert outcome.cost == 40.0 + 2 * 5.0 + 25.0


def test_never_act_leaves_even_a_perfect_float32_score_alone() -> None:
    """As the stream decides: in float64, where "never" lies above a score of 1.0."""
    scores = np.array([0.3, 1.0], dtype=np.float32)
    labels = np.array([0, 1], dtype=np.int8)
    outcome = decision_outcome(scores, labels, np.array([5.0, 80.0]), NEVER_ACT, NEVER_ACT, FEES)
    assert (outcome.declined, outcome.reviewed, outcome.cost) == (0, 0, 80.0)


def test_the_cost_table_is_the_cost_of_each_pair_of_thresholds() -> None:
    rng = np.random.default_rng(4)
    labels = (rng.random(400) < 0.1).astype(np.int8)
    # rounded: many tied scores, some at a threshold exactly
    scores = np.round(rng.random(400) * 0.5 + labels * 0.5, 2).astype(np.float32)
    amounts = rng.gamma(2.0, 50.0, 400)
    review = np.array([0.0, 0.25, 0.5, 0.75, 0.9])
    decline = np.array([0.25, 0.75, 1.0, NEVER_ACT])
    table = costs_by_threshold(scores, labels, amounts, review, decline, FEES)
    for (i, r), (j, d) in itertools.product(enumerate(review), enumerate(decline)):
        if r > d:
            assert table[i, j] == np.inf
        else:
            expected = decision_outcome(scores, labels, amounts, r, d, FEES).cost
            assert np.isclose(table[i, j], expected, rtol=1e-12), (r, d)


@pytest.mark.parametrize("max_reviews", [np.inf, 40, 0])
def test_the_chosen_thresholds_cost_least_of_the_grid_within_the_review_limit(
    max_reviews: float,
) -> None:
    rng = np.random.default_rng(9)
    labels = (rng.random(3000) < 0.03).astype(np.int8)
    scores = np.clip(rng.random(3000) * 0.4 + labels * rng.random(3000) * 0.6, 0, 1)
    amounts = rng.gamma(2.0, 60.0, 3000)
    review, decline, cost = choose_cost_thresholds(
        scores, labels, amounts, FEES, grid=20, max_reviews=max_reviews
    )
    grid = np.append(np.unique(np.quantile(scores, np.linspace(0.9, 1.0, 20))), 1.0 + 1e-9)
    every = [
        decision_outcome(scores, labels, amounts, r, d, FEES)
        for r, d in itertools.combinations_with_replacement(grid, 2)
    ]
    allowed = [o.cost for o in every if o.reviewed <= max_reviews]
    if max_reviews == np.inf:
        assert np.isclose(cost, min(allowed), rtol=1e-12)
    else:  # thresholds that fill the capacity join the grid: at least as cheap
        assert cost <= min(allowed) + 1e-9
    chosen = decision_outcome(scores, labels, amounts, review, decline, FEES)
    assert np.isclose(chosen.cost, cost)
    assert chosen.reviewed <= max_reviews
    assert review <= decline
    if max_reviews < np.inf:  # the limit binds: without it the cheapest reviews more
        assert min(o.cost for o in every) < cost


@pytest.mark.parametrize("max_reviews", [np.inf, 0])
def test_the_choice_is_the_first_cheapest_pair_on_tied_float32_scores(max_reviews: float) -> None:
    """Against a direct count over the same grid, with ties and perfect float32 scores:
    the cheapest pair (0: one that reviews nothing), the lowest review then decline
    threshold on a tie; fees of 0.1 and 0.3 make equal costs differ in the last bit."""
    fees = CostModel(review_fee=0.1, decline_fee=0.3)
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(2, 30))
        labels = (rng.random(n) < 0.5).astype(np.int8)
        scores = np.round(rng.random(n), 1).astype(np.float32)
        scores[rng.random(n) < 0.2] = 1.0
        amounts = rng.choice([0.1, 0.2, 0.3, 0.7, 5.0], n)
        choice = choose_cost_thresholds(
            scores, labels, amounts, fees, grid=10, max_reviews=max_reviews
        )
        # the chooser's grid (a capacity of 0 adds no threshold to it)
        grid = np.unique([*np.quantile(scores, np.linspace(0.9, 1.0, 10)), 1.0 + 1e-9])
        allowed = [
            (o.cost, r, d)
            for r, d in itertools.combinations_with_replacement(grid, 2)
            if (o := decision_outcome(scores, labels, amounts, r, d, fees)).reviewed <= max_reviews
        ]
        cheapest = min(c for c, _, _ in allowed)
        first = min((r, d) for c, r, d in allowed if abs(c - cheapest) < 1e-9)
        assert choice[:2] == first
        assert abs(choice[2] - cheapest) < 1e-9


def test_a_review_limit_above_the_payments_is_no_limit() -> None:
    rng = np.random.default_rng(2)
    labels = (rng.random(500) < 0.05).astype(np.int8)
    scores = rng.random(500) * 0.5 + labels * 0.5
    amounts = rng.gamma(2.0, 60.0, 500)
    unlimited = choose_cost_thresholds(scores, labels, amounts, FEES)
    assert choose_cost_thresholds(scores, labels, amounts, FEES, max_reviews=1e20) == unlimited


def test_the_report_cost_curves_cross_sparse_scores_and_pass_the_chosen_thresholds() -> None:
    """Quantiles alone would leave the gap between 0.05 and 0.95, where a fraud lies, to
    a straight line; the curves are the real costs at every point drawn."""
    rng = np.random.default_rng(5)
    scores = np.concatenate(
        [rng.random(2000) * 0.05, [0.41, 0.42, 0.43], 0.95 + rng.random(30) * 0.05]
    )
    labels = np.zeros(len(scores), dtype=np.int8)
    labels[2000:] = [1, 0, 0] + [1] * 30
    amounts = rng.gamma(2.0, 50.0, len(scores))
    chosen = (0.4125, 0.7)
    grid, decline_only, review_only = cost_curves(scores, labels, amounts, FEES, chosen)
    assert np.diff(grid).max() <= (1.0 - np.quantile(scores, 0.9)) / 199 + 1e-12
    assert set(chosen) <= set(grid)
    for t, declined, reviewed in zip(grid, decline_only, review_only, strict=True):
        assert np.isclose(declined, decision_outcome(scores, labels, amounts, t, t, FEES).cost)
        expected = decision_outcome(scores, labels, amounts, t, NEVER_ACT, FEES).cost
        assert np.isclose(reviewed, expected)
