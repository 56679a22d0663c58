"""The batch-wide (numpy) steps of the hot path give exactly what their row-by-row
definitions give: decisions, reason codes and rule hits, character for character."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import xgboost as xgb

from batch_training.model_metadata import Thresholds
from batch_training.registry import ModelRegistry
from feature_store import Transaction
from feature_store.definitions import AmountToWindowMean
from stream.compiled import probe_rows
from stream.explain import ReasonExplainer, describe_feature
from stream.policy import decide_batch
from stream.records import Decision
from stream.rules import RuleBook, RuleHit, RuleSet
from stream.scoring import load_serving_model

RULES = """
blocklist: {cards: [card_bad], merchants: [merch_bad]}
allowlist: {cards: [card_vip], merchants: [merch_vip]}
amount_caps:
  - {name: jewellery_cap, mcc: "5944", max_amount: 2000, decision: review}
  - {name: online_cap, channel: online, max_amount: 5000, decision: decline}
velocity:
  - {name: burst, feature: card_tx_count_10m, above: 3, decision: review}
  - {name: flood, feature: card_tx_count_1h, above: 6, decision: decline}
"""


def _decide_row_by_row(
    scores: np.ndarray, thresholds: Thresholds
) -> list[tuple[Decision, list[str]]]:
    out: list[tuple[Decision, list[str]]] = []
    for score in scores.tolist():
        if score >= thresholds.decline:
            out.append(
                ("decline", [f"score {score:.3f} >= decline threshold {thresholds.decline:.3f}"])
            )
        elif score >= thresholds.review:
            out.append(
                ("review", [f"score {score:.3f} >= review threshold {thresholds.review:.3f}"])
            )
        else:
            out.append(("approve", []))
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decide_batch_is_the_threshold_rule_row_by_row(dtype: type[np.floating]) -> None:
    thresholds = Thresholds(review=0.0137, decline=0.5)
    rng = np.random.default_rng(7)
    edges = [0.0, 1.0, 0.0137, 0.5, np.nextafter(0.0137, 0), np.nextafter(0.5, 0), np.nan]
    scores = np.concatenate([rng.random(2_000) ** 3, edges]).astype(dtype)
    assert decide_batch(scores, thresholds) == _decide_row_by_row(
        scores.astype(np.float64), thresholds
    )


def test_reasons_are_the_top_contributions_row_by_row(trained_registry: ModelRegistry) -> None:
    model = load_serving_model(trained_registry)
    booster, features = model.model.booster, model.feature_set.features
    explainer = ReasonExplainer(booster=booster, feature_set=model.feature_set)
    rows = probe_rows(booster, 512, seed=3)
    matrix = xgb.DMatrix(rows, feature_names=list(model.feature_set.names))
    contribs = booster.predict(matrix, pred_contribs=True, approx_contribs=True)[:, :-1]
    expected = [
        [
            f"{describe_feature(features[j], float(row[j]))} (+{contrib[j]:.2f})"
            for j in np.argsort(-contrib)[:3]
            if contrib[j] > 0
        ]
        for row, contrib in zip(rows, contribs, strict=True)
    ]
    assert sum(map(len, expected)) > len(rows)  # most rows have reasons to compare
    assert explainer.explain(rows) == expected
    assert explainer.explain(rows[:0]) == []


def test_rule_hits_are_evaluate_on_every_row() -> None:
    names = ("amount", "card_tx_count_10m", "card_tx_count_1h")
    book = RuleBook(RuleSet.parse(RULES, features=names), names)
    rng = np.random.default_rng(11)
    cards = ["card_bad", "card_vip", "card_a", "card_b", "card_c", "card_d"]
    merchants = ["merch_bad", "merch_vip", "merch_a", "merch_b", "merch_c"]
    transactions = [
        Transaction(
            transaction_id=f"t{i}",
            event_time=datetime(2025, 6, 1, tzinfo=UTC),
            card_id=str(rng.choice(cards)),
            merchant_id=str(rng.choice(merchants)),
            amount=float(rng.choice([10.0, 2000.0, 2000.01, 4999.0, 5000.0, 7500.0])),
            mcc=str(rng.choice(["5944", "5411"])),
            channel=str(rng.choice(["online", "pos"])),
        )
        for i in range(3_000)
    ]
    features = rng.integers(0, 9, size=(len(transactions), len(names))).astype(np.float64)
    features[rng.random(features.shape) < 0.05] = np.nan
    for given in (features, None):
        expected: list[tuple[int, RuleHit]] = []
        for i, tx in enumerate(transactions):
            hit = book.evaluate(tx, None if given is None else given[i])
            if hit is not None:
                expected.append((i, hit))
        assert len(expected) > len(transactions) // 4
        assert book.hits(transactions, given) == expected
    assert RuleBook(RuleSet(), names).hits(transactions, features) == []


def test_a_small_amount_ratio_keeps_its_digits() -> None:
    """Card testing (0.57 against a 30-day average of 24) read "amount 0.0x the card's 30
    days average"."""
    ratio = AmountToWindowMean(entity="card", window_s=2_592_000)
    assert describe_feature(ratio, 0.0237) == "amount 0.024x the card's 30 days average"
    assert describe_feature(ratio, 0.5) == "amount 0.5x the card's 30 days average"
    assert describe_feature(ratio, 7.43) == "amount 7.4x the card's 30 days average"
    assert describe_feature(ratio, 0.999) == "amount 1.0x the card's 30 days average"
    assert describe_feature(ratio, 2e-05) == "amount <0.001x the card's 30 days average"
