"""The training report: what the thresholds do, and how the model was chosen."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from batch_training.dataset import TimeSplit
from batch_training.folds import Evaluation
from batch_training.metrics import CardPrecisionDay, CostModel, DecisionOutcome, decision_outcome
from batch_training.registry import ModelRegistry
from batch_training.report import _decisions_section, _metric_name, _metrics_notes, _selection_text
from batch_training.report_plots import EvaluatedWindow, write_plots


def test_the_report_accounts_for_every_test_payment_and_the_cost(
    trained_registry: ModelRegistry,
) -> None:
    meta = trained_registry.load_champion().metadata
    report = trained_registry.version_dir(1) / "report"
    summary = json.loads((report / "metrics.json").read_text())
    decisions = summary["decisions"]
    page = (report / "index.html").read_text()
    assert decisions["cost"] == meta.metrics["test_cost"]
    section = (
        page.split("<h2>Decisions on the test window</h2>")[1].split("<h2>")[0].split("<h3>")[0]
    )
    rows = re.findall(r"<tr><td>(\w+)</td><td class=n>([\d,]+)</td>", section)
    assert [action for action, _ in rows] == ["decline", "review", "pass"]
    counts = [int(n.replace(",", "")) for _, n in rows]
    passed = summary["test_rows"] - decisions["declined"] - decisions["reviewed"]
    assert counts == [decisions["declined"], decisions["reviewed"], passed]
    assert sum(counts) == summary["test_rows"] > 0
    assert f"{decisions['cost']:,.0f} with these thresholds" in section
    # every fraud's amount is declined, reviewed or missed
    amounts = [decisions[f"{a}_fraud_amount"] for a in ("declined", "reviewed", "missed")]
    assert sum(amounts) == pytest.approx(decisions["cost_without_action"])
    assert "share of the fraud amount" in section
    assert f"against\n{decisions['cost_without_action']:,.0f} with no action" in section


def test_the_report_shows_each_candidate_and_why_one_was_chosen(
    trained_registry: ModelRegistry,
) -> None:
    extra = trained_registry.load_champion().metadata.extra
    page = (trained_registry.version_dir(1) / "report" / "index.html").read_text()
    section = page.split("<h2>How the model was trained</h2>")[1].split("<h2>")[0]
    rows = re.findall(r"<tr( class=chosen)?><td>(\d+)</td>", section)
    assert [int(n) for _, n in rows] == list(range(1, len(extra["candidates"]) + 1))
    assert [int(n) for chosen, n in rows if chosen] == [extra["selection"]["chosen"]]
    assert f"for {extra['rounds']:,} rounds" in section
    assert f"window ({extra['train_rows']:,} payments)" in section
    assert "{'" not in page  # no Python repr leaks into what analysts read


def test_the_report_shows_what_the_thresholds_do_to_each_fraud_scenario(
    trained_registry: ModelRegistry,
) -> None:
    report = trained_registry.version_dir(1) / "report"
    summary = json.loads((report / "metrics.json").read_text())
    by_scenario, decisions = summary["frauds_by_scenario"], summary["decisions"]
    # the simulator's scenarios, each fraud in exactly one
    assert set(by_scenario) <= {"stolen_card", "compromised_merchant", "card_testing"}
    assert len(by_scenario) >= 2
    assert sum(s["frauds"] for s in by_scenario.values()) == summary["test_frauds"]
    for key in ("declined", "reviewed", "missed_fraud_amount"):
        total = sum(s[key] for s in by_scenario.values())
        expected = decisions["frauds_" + key] if key != "missed_fraud_amount" else decisions[key]
        assert total == pytest.approx(expected)
    for s in by_scenario.values():
        assert s["declined"] + s["reviewed"] + s["passed"] == s["frauds"]
    fraud_amount = sum(s["fraud_amount"] for s in by_scenario.values())
    assert fraud_amount == pytest.approx(decisions["cost_without_action"])
    page = (report / "index.html").read_text()
    section = page.split("<h3>Frauds by scenario</h3>")[1].split("<h2>")[0]
    assert re.findall(r"<tr><td>(\w+)</td>", section) == sorted(by_scenario)


def test_the_decisions_text_flags_too_many_reviews_and_a_costly_policy() -> None:
    # 23 reviews over 2 days against a capacity of 11: 11.5 a day, over it
    costly = DecisionOutcome(
        payments=100,
        frauds=2,
        fraud_amount=40.0,
        reviewed=23,
        frauds_reviewed=1,
        declined=5,
        frauds_declined=1,
        declined_fraud_amount=20.0,
        reviewed_fraud_amount=20.0,
        missed_fraud_amount=0.0,
        fees=CostModel(review_fee=5.0, decline_fee=25.0),
    )
    text = _decisions_section(costly, (0.5, 0.9), days=2, capacity=11)
    assert "on the test window 11.5 reviews a day, <b>more than the capacity</b>" in text
    # 115 in review fees and 100 in declines against 40 of fraud: 175 more than no action
    assert "<b>175 more</b>: on this window acting cost more than doing nothing" in text
    assert "review at score &ge; 0.5000, decline at score &ge; 0.9000" in text
    assert "within it" not in text


def test_the_report_says_what_the_protocol_left_out_and_what_chose_the_thresholds(
    trained_registry: ModelRegistry,
) -> None:
    meta = trained_registry.load_champion().metadata
    report = trained_registry.version_dir(1) / "report"
    summary = json.loads((report / "metrics.json").read_text())
    left_out, validation = summary["known_compromised_left_out"], summary["validation_slice"]
    assert left_out == meta.extra["known_compromised_left_out"]
    assert left_out["frauds"] > 0  # 10 training days of a population with frequent fraud
    assert 0 < validation["frauds"] < validation["payments"] < meta.extra["train_rows"]
    page = (report / "index.html").read_text()
    assert f"{left_out['payments']:,} more payments of the window" in page
    assert f"with {left_out['frauds']:,} frauds" in page
    assert f"{validation['payments']:,} payments with {validation['frauds']:,} frauds" in page
    # the fees a cost is in, and card precision@100 per dated day with its ceiling
    assert summary["costs"]["review_fee"] == 5.0
    days = summary["card_precision_at_100_by_day"]
    assert days[0]["day"] == str(meta.training_window["split_test"])[:10]
    assert all(0 <= d["value"] <= d["most"] <= 1 for d in days)
    assert sum(d["value"] for d in days) / len(days) == pytest.approx(
        meta.metrics["card_precision_at_100"]
    )
    assert (report / "shap_summary.png").stat().st_size > 1000


def test_a_review_threshold_equal_to_the_decline_one_reads_never_review() -> None:
    outcome = DecisionOutcome(
        payments=10,
        frauds=1,
        fraud_amount=10.0,
        reviewed=0,
        frauds_reviewed=0,
        declined=1,
        frauds_declined=1,
        declined_fraud_amount=10.0,
        reviewed_fraud_amount=0.0,
        missed_fraud_amount=0.0,
        fees=CostModel(),
    )
    text = _decisions_section(outcome, (0.8, 0.8), days=1, capacity=None)
    assert "never review (the review threshold, 0.8000, is not below the decline one)" in text
    assert "decline at score &ge; 0.8000" in text


def test_plots_are_drawn_for_bins_that_are_all_fraud_or_fraud_free(tmp_path: Path) -> None:
    """Wilson bounds equal the rate there, up to rounding: an error bar a hair below zero
    made matplotlib refuse the plot, and the whole report with it."""
    scores = np.concatenate([np.full(6, 0.95), np.full(11, 0.45), np.full(300, 0.0005)])
    labels = np.concatenate([np.ones(6), np.zeros(11), np.zeros(299), np.ones(1)])
    scores, labels = scores.astype(np.float32), labels.astype(np.int8)
    features = np.column_stack([scores, np.arange(len(scores)) % 7]).astype(np.float32)
    names = ["a", "b"]
    booster = xgb.train(
        {"max_depth": 2}, xgb.DMatrix(features, label=labels, feature_names=names), 3
    )
    evaluation = Evaluation(
        split=TimeSplit(train_start=date(2025, 1, 1)),
        metrics={"average_precision": 0.9, "roc_auc": 0.9, "card_precision_at_100": 0.07},
        cp_per_day=[CardPrecisionDay(day=20_000, precision=0.07, ceiling=0.07)],
        scores=scores,
        rows=np.arange(len(scores)),
    )
    amounts = np.full(len(scores), 10.0)
    window = EvaluatedWindow(evaluation, labels, amounts, features, names)
    thresholds = (0.4, 0.9)
    outcome = decision_outcome(scores, labels, amounts, *thresholds, CostModel())
    files = write_plots(tmp_path, window, booster, CostModel(), thresholds, outcome)
    assert "Calibration" in files
    for name in files.values():
        assert (tmp_path / name).stat().st_size > 1000


def test_the_metrics_notes_flag_a_fall_to_test_and_a_gate_that_cost_disagrees_with() -> None:
    mine = {"average_precision": 0.75, "validation_average_precision": 0.85, "test_cost": 900.0}
    kept = _metrics_notes(mine, {"test_cost": 1000.0}, passed_gate=False)
    assert "fell from 0.8500 on the validation slice to 0.7500" in kept
    assert "its decisions cost 100 less than the champion's" in kept
    passed = _metrics_notes(mine, {"test_cost": 800.0}, passed_gate=True)
    assert "It passed the gate, though its decisions cost 100 more" in passed
    quiet = {"average_precision": 0.75, "validation_average_precision": 0.78, "test_cost": 900.0}
    assert _metrics_notes(quiet, {"test_cost": 1000.0}, passed_gate=True) == ""
    assert _metrics_notes(quiet, None, passed_gate=True) == ""


def test_fold_aggregates_are_named_in_words() -> None:
    assert _metric_name("folds_mean_roc_auc") == "ROC AUC, mean over the folds"
    assert (
        _metric_name("folds_std_card_precision_at_100") == "card precision@100, sd over the folds"
    )


def test_the_search_note_tells_a_gain_from_its_standard_error() -> None:
    """Rounded to four places, a gain of 0.002956 read as "0.0030 within a standard error
    of 0.0030", and a 1.033 ratio as "1.0 standard errors"."""
    kept = _selection_text({"highest": 5, "chosen": 1, "gain": 0.002956, "gain_se": 0.003038})
    assert "gain over the defaults (0.002956) is within the noise (standard error 0.003038)" in (
        kept
    )
    taken = _selection_text({"highest": 2, "chosen": 2, "gain": 0.006046, "gain_se": 0.005853})
    assert "validated 0.0060 above the defaults, 1.03 standard errors of that gain" in taken
