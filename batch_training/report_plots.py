"""The training report's figures: PNGs of the test window's scores, costs and features."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import precision_recall_curve, roc_curve

from batch_training.metrics import CostModel, DecisionOutcome, cost_curves

if TYPE_CHECKING:
    from batch_training.folds import Evaluation

__all__ = ["EvaluatedWindow", "write_plots"]

_SHAP_ROWS = 2000
_CALIBRATION_BINS = 10


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


@dataclass(frozen=True, eq=False)
class EvaluatedWindow:
    """The test window as the report shows it: the model's evaluation there, and its
    rows' labels, amounts and features."""

    evaluation: Evaluation
    labels: np.ndarray
    amounts: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    scenarios: np.ndarray | None = None  # each row's fraud scenario, when the history has it


def write_plots(
    out: Path,
    window: EvaluatedWindow,
    booster: xgb.Booster,
    cost: CostModel,
    thresholds: tuple[float, float],
    outcome: DecisionOutcome,
) -> dict[str, str]:
    """Draw the report's figures into ``out``; their titles and file names, in order."""
    evaluation, labels, amounts = window.evaluation, window.labels, window.amounts
    test_features, feature_names = window.features, window.feature_names
    plt = _figure()
    scores = evaluation.scores
    files: dict[str, str] = {}
    both = 0 < labels.sum() < len(labels)

    fig, ax = plt.subplots(figsize=(5, 4))
    if both:
        precision, recall, _ = precision_recall_curve(labels, scores)
        ax.plot(recall, precision)
    ax.set(
        xlabel="recall",
        ylabel="precision",
        title=f"Precision-recall (AP {evaluation.metrics['average_precision']:.3f})",
    )
    files["Precision-recall curve"] = _save(plt, fig, out / "pr_curve.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    if both:
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=f"ROC (AUC {evaluation.metrics['roc_auc']:.3f})",
    )
    files["ROC curve"] = _save(plt, fig, out / "roc_curve.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="legitimate", density=True, log=True)
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="fraud", density=True, log=True)
    for t, name in zip(thresholds, ("review", "decline"), strict=True):
        ax.axvline(t, linestyle="--", color="black", linewidth=0.8)
        ax.annotate(name, (t, ax.get_ylim()[1]), rotation=90, va="top", fontsize=8)
    ax.set(xlabel="score", ylabel="density (log)", title="Score distribution by class")
    ax.legend()
    files["Score distribution"] = _save(plt, fig, out / "score_distribution.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.bar(range(1, len(evaluation.cp_per_day) + 1), evaluation.cp_per_day)
    ax.axhline(
        evaluation.metrics["card_precision_at_100"], color="black", linestyle="--", label="mean"
    )
    ax.set(xlabel="test day", ylabel="card precision@100", title="Card precision@100 by day")
    ax.legend()
    files["Card precision@100 by day"] = _save(plt, fig, out / "cp_by_day.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    grid, decline_only, review_only = cost_curves(scores, labels, amounts, cost, thresholds)
    ax.plot(grid, decline_only, label="decline at threshold, never review")
    ax.plot(grid, review_only, label="review at threshold, never decline")
    ax.axhline(outcome.cost, color="black", linewidth=0.8, label="the chosen thresholds")
    ax.axhline(outcome.fraud_amount, color="grey", linewidth=0.8, label="no action")
    # declining nearly everything costs many times more: it would flatten the rest
    ax.set_ylim(0, 1.3 * max(outcome.fraud_amount, outcome.cost, 1.0))
    marks = {"review = decline": thresholds[0]} if thresholds[0] == thresholds[1] else {}
    for name, t in (marks or {"review": thresholds[0], "decline": thresholds[1]}).items():
        if t <= 1.0:
            ax.axvline(t, linestyle="--", color="grey", linewidth=0.8)
            ax.annotate(name, (t, ax.get_ylim()[1]), rotation=90, va="top", fontsize=8)
    ax.set(xlabel="threshold", ylabel="cost on the test window", title="Cost vs threshold")
    ax.legend(fontsize=8)
    files["Cost vs threshold"] = _save(plt, fig, out / "cost_curve.png")

    # exact TreeSHAP costs rows x trees x leaves x depth^2: a sample spread over the
    # whole test window ranks the features as well as more rows would, in seconds
    n = len(test_features)
    sample = (
        test_features[np.linspace(0, n - 1, _SHAP_ROWS).astype(np.int64)]
        if n > _SHAP_ROWS
        else test_features
    )
    contribs = booster.predict(xgb.DMatrix(sample, feature_names=feature_names), pred_contribs=True)
    importance = np.abs(contribs[:, :-1]).mean(axis=0)
    order = np.argsort(importance)[-20:]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([feature_names[i] for i in order], importance[order])
    ax.set(xlabel="mean |SHAP contribution| (log-odds)", title="Feature importance (SHAP)")
    files["SHAP feature importance"] = _save(plt, fig, out / "shap_importance.png")

    fig, ax = plt.subplots(figsize=(5, 4))
    if both:
        # even bins: with frauds under 1 % of the rows, quantile bins all fall below a
        # score of 0.06 and hide the review and decline region; each point says its rows
        bin_of = np.searchsorted(np.linspace(0.0, 1.0, _CALIBRATION_BINS + 1)[1:-1], scores)
        rows = np.bincount(bin_of, minlength=_CALIBRATION_BINS)
        kept = rows > 0
        sums = [
            np.bincount(bin_of, weights=w, minlength=_CALIBRATION_BINS) for w in (scores, labels)
        ]
        predicted, observed = (total[kept] / rows[kept] for total in sums)
        ax.plot(predicted, observed, marker="o")
        for x, y, n in zip(predicted, observed, rows[kept], strict=True):
            ax.annotate(f"{n:,}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="mean predicted score", ylabel="observed fraud rate", title="Calibration")
    files["Calibration"] = _save(plt, fig, out / "calibration.png")
    return files
