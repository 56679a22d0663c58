"""The training report risk teams read: an HTML page with PNG plots, and metrics.json."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xgboost as xgb
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from batch_training.gate import GateDecision
from batch_training.metrics import CostModel, decision_cost
from batch_training.registry import ModelMetadata

if TYPE_CHECKING:
    from batch_training.pipeline import Evaluation

__all__ = ["write_report"]

_SHAP_ROWS = 2000


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


def _plots(
    out: Path,
    evaluation: Evaluation,
    labels: np.ndarray,
    amounts: np.ndarray,
    booster: xgb.Booster,
    test_features: np.ndarray,
    feature_names: list[str],
    cost: CostModel,
    thresholds: tuple[float, float],
) -> dict[str, str]:
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
    grid = np.unique(np.quantile(scores, np.linspace(0.9, 1.0, 50)))
    costs = [decision_cost(scores, labels, amounts, t, t, cost) for t in grid]
    reviews = [decision_cost(scores, labels, amounts, t, 2.0, cost) for t in grid]
    ax.plot(grid, costs, label="decline at threshold")
    ax.plot(grid, reviews, label="review at threshold")
    if thresholds[0] <= 1.0:
        ax.axvline(thresholds[0], linestyle="--", color="grey")
    ax.set(xlabel="threshold", ylabel="cost on the test window", title="Cost vs threshold")
    ax.legend()
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
        observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="mean predicted score", ylabel="observed fraud rate", title="Calibration")
    files["Calibration"] = _save(plt, fig, out / "calibration.png")
    return files


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return html.escape(str(value))


def write_report(
    out: Path,
    *,
    metadata: ModelMetadata,
    evaluation: Evaluation,
    labels: np.ndarray,
    amounts: np.ndarray,
    booster: xgb.Booster,
    test_features: np.ndarray,
    feature_names: list[str],
    cost: CostModel,
    gate: GateDecision,
    promoted: bool,
    champion: dict[str, float] | None,
) -> Path:
    """Write ``index.html``, its PNGs and ``metrics.json`` to ``out``; return the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    thresholds = (metadata.thresholds.review, metadata.thresholds.decline)
    files = _plots(
        out, evaluation, labels, amounts, booster, test_features, feature_names, cost, thresholds
    )
    summary = {
        "model_version": metadata.version,
        "promoted": promoted,
        "gate": gate.reason,
        "metrics": metadata.metrics,
        "champion_metrics": champion,
        "thresholds": {"review": thresholds[0], "decline": thresholds[1]},
        "training_window": metadata.training_window,
        "test_rows": len(labels),
        "test_frauds": int(labels.sum()),
        "folds": metadata.extra.get("folds", []),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td>"
        f"<td>{_fmt(champion.get(k, float('nan'))) if champion else ''}</td></tr>"
        for k, v in metadata.metrics.items()
    )
    folds = "".join(
        "<tr>"
        + "".join(
            f"<td>{_fmt(f[k])}</td>"
            for k in (
                "fold",
                "train",
                "test",
                "roc_auc",
                "average_precision",
                "card_precision_at_100",
            )
        )
        + "</tr>"
        for f in summary["folds"]
    )
    images = "".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(title)}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, name in files.items()
    )
    verdict = "promoted to champion" if promoted else "registered as a challenger"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model v{metadata.version}: training report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
figure{{display:inline-block;margin:8px}}img{{max-width:520px}}</style></head><body>
<h1>Model v{metadata.version}: {verdict}</h1>
<p><b>Promotion gate:</b> {html.escape(gate.reason)}</p>
<p>Feature set {html.escape(metadata.feature_set_name)} v{metadata.feature_set_version}
({len(feature_names)} features, fingerprint {metadata.feature_set_fingerprint[:12]}).
Training window {html.escape(str(metadata.training_window))}.
Test: {len(labels):,} transactions, {int(labels.sum()):,} frauds.</p>
<p>Thresholds: {_threshold("review", thresholds[0])}, {_threshold("decline", thresholds[1])}
(cost model: missed fraud = amount, review = {cost.review_fee},
declined good payment = {cost.decline_fee}).</p>
<h2>Metrics on the test window</h2>
<table><tr><th>metric</th><th>this model</th><th>champion</th></tr>{rows}</table>
<h2>Prequential folds</h2>
<table><tr><th>fold</th><th>train</th><th>test</th><th>AUC</th><th>AP</th><th>CP@100</th></tr>{folds}</table>
<h2>Plots</h2>{images}
</body></html>"""
    path = out / "index.html"
    path.write_text(page)
    return path


def _threshold(action: str, threshold: float) -> str:
    # NEVER_ACT is a hair above 1.0: printed as 1.0000 it would read "act on a perfect score"
    return f"never {action}" if threshold > 1.0 else f"{action} at score &ge; {threshold:.4f}"
