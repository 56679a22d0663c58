"""The training report's figures: PNGs of the test window's scores, costs and features."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import precision_recall_curve, roc_curve

from batch_training.metrics import CostModel, DecisionOutcome, cost_curves

if TYPE_CHECKING:
    from batch_training.folds import Evaluation

__all__ = ["EvaluatedWindow", "write_plots"]

_SHAP_ROWS = 2000
_SHAP_FEATURES = 20
# score edges of the calibration bins: log-spaced below 0.1, where nearly all payments lie
_CALIBRATION_EDGES = np.array([0.0, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 0.6, 0.9, 1.0])


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path) -> str:
    fig.tight_layout()
    # long feature names and captions would be clipped at the figure's edge
    fig.savefig(path, dpi=100, bbox_inches="tight")
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


def _marks(thresholds: tuple[float, float]) -> dict[str, float]:
    """The thresholds a plot marks: those that act (a "never" one lies above 1.0), one
    mark when review equals decline and no score lies between them."""
    review, decline = thresholds
    if review >= decline:
        return {"decline": decline} if decline <= 1.0 else {}
    return {name: t for name, t in (("review", review), ("decline", decline)) if t <= 1.0}


def _flagged(scores: np.ndarray, labels: np.ndarray, t: float) -> tuple[float, float, float]:
    """Precision, recall and false positive rate of flagging scores at or above ``t``."""
    hit = scores >= np.float64(t)  # float32 scores: t must not round onto a tied score
    frauds, legit = labels.sum(), len(labels) - labels.sum()
    caught = int(labels[hit].sum())
    precision = caught / hit.sum() if hit.any() else float("nan")
    return precision, caught / max(frauds, 1), (int(hit.sum()) - caught) / max(legit, 1)


def write_plots(
    out: Path,
    window: EvaluatedWindow,
    booster: xgb.Booster,
    cost: CostModel,
    thresholds: tuple[float, float],
    outcome: DecisionOutcome,
) -> dict[str, str]:
    """Draw the report's figures into ``out``; their titles and file names, in order."""
    plt = _figure()
    files: dict[str, str] = {}
    for title, name, draw in (
        ("Precision-recall curve", "pr_curve", _precision_recall),
        ("ROC curve", "roc_curve", _roc),
        ("Score distribution", "score_distribution", _score_distribution),
        ("Card precision@100 by day", "cp_by_day", _cp_by_day),
        ("Cost vs threshold", "cost_curve", _cost_curve),
        ("Calibration", "calibration", _calibration),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        draw(ax, window, thresholds, cost, outcome)
        files[title] = _save(plt, fig, out / f"{name}.png")
    files |= _shap_plots(plt, out, window, booster)
    return files


def _precision_recall(
    ax: Any, w: EvaluatedWindow, thresholds: tuple[float, float], *_unused: object
) -> None:
    scores, labels = w.evaluation.scores, w.labels
    if 0 < labels.sum() < len(labels):
        precision, recall, _ = precision_recall_curve(labels, scores)
        ax.plot(recall, precision, label="this model")
        for name, t in _marks(thresholds).items():
            p, r, _ = _flagged(scores, labels, t)
            what = "none flagged" if math.isnan(p) else f"precision {p:.3f}, recall {r:.3f}"
            ax.plot(r, 0 if math.isnan(p) else p, "o", label=f"{name} threshold: {what}")
    ax.axhline(labels.mean(), color="grey", linestyle="--", label=f"fraud rate {labels.mean():.2%}")
    ax.set(
        xlabel="recall (share of the frauds flagged)",
        ylabel="precision (share of flagged that are fraud)",
        title=f"Precision-recall (AP {w.evaluation.metrics['average_precision']:.3f})",
        ylim=(0, 1.02),
    )
    ax.legend(fontsize=7)


def _roc(ax: Any, w: EvaluatedWindow, thresholds: tuple[float, float], *_unused: object) -> None:
    scores, labels = w.evaluation.scores, w.labels
    legit = int(len(labels) - labels.sum())
    if 0 < labels.sum() < len(labels):
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label="this model")
        for name, t in _marks(thresholds).items():
            _, r, f = _flagged(scores, labels, t)
            ax.plot(max(f, 0.5 / legit), r, "o", label=f"{name}: {f:.3%} of legitimate, {r:.0%}")
    grid = np.logspace(np.log10(0.5 / max(legit, 1)), 0, 50)
    ax.plot(grid, grid, "--", color="grey", label="chance")
    # operating points lie at false positive rates far below 1 %: a linear axis hides them
    ax.set_xscale("log")
    ax.set(
        xlabel="false positive rate (share of legitimate payments flagged, log)",
        ylabel="true positive rate (recall)",
        title=f"ROC (AUC {w.evaluation.metrics['roc_auc']:.3f})",
        xlim=(0.5 / max(legit, 1), 1.0),
        ylim=(0, 1.02),
    )
    ax.legend(fontsize=7)


def _score_distribution(
    ax: Any, w: EvaluatedWindow, thresholds: tuple[float, float], *_unused: object
) -> None:
    scores, labels = w.evaluation.scores, w.labels
    bins = np.linspace(0, 1, 41)
    for value, name in ((0, "legitimate"), (1, "fraud")):
        mine = scores[labels == value]
        # counts, not densities: how many legitimate payments lie above a threshold is
        # the point, and a density hides the classes' ratio
        ax.hist(mine, bins=bins, alpha=0.6, label=f"{name} ({len(mine):,})", log=True)
    for name, t in _marks(thresholds).items():
        ax.axvline(t, linestyle="--", color="black", linewidth=0.8)
        ax.annotate(name, (t, ax.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8)
    ax.set(xlabel="score", ylabel="payments (log)", title="Score distribution by class")
    ax.legend(fontsize=8)


def _cp_by_day(ax: Any, w: EvaluatedWindow, *_unused: object) -> None:
    per_day = w.evaluation.cp_per_day
    # month-day, unless the window is long enough for one to repeat
    long = bool(per_day) and per_day[-1].day - per_day[0].day > 360
    names = [d.calendar_day.strftime("%Y-%m-%d" if long else "%m-%d") for d in per_day]
    ax.bar(names, [d.precision for d in per_day], label="this model")
    ax.plot(
        names,
        [d.ceiling for d in per_day],
        "_",
        color="black",
        markersize=18,
        markeredgewidth=2,
        label="the most it could reach (cards it found before are out)",
    )
    ax.axhline(
        w.evaluation.metrics["card_precision_at_100"], color="grey", linestyle="--", label="mean"
    )
    ax.set(
        xlabel="test day (UTC)",
        ylabel="card precision@100",
        title="Card precision@100 by day",
        ylim=(0, max([1e-3, *(d.ceiling for d in per_day)]) * 1.15),
    )
    ax.legend(fontsize=7)


def _cost_curve(
    ax: Any,
    w: EvaluatedWindow,
    thresholds: tuple[float, float],
    cost: CostModel,
    outcome: DecisionOutcome,
) -> None:
    grid, decline_only, review_only = cost_curves(
        w.evaluation.scores, w.labels, w.amounts, cost, thresholds
    )
    ax.plot(grid, decline_only, label="decline at the score, review none")
    ax.plot(grid, review_only, label="review at the score, decline none")
    ax.axhline(outcome.cost, color="black", linewidth=0.8, label="the chosen pair's cost")
    ax.axhline(outcome.fraud_amount, color="grey", linewidth=0.8, label="no action")
    # declining nearly everything costs many times more: it would flatten the rest
    ax.set_ylim(0, 1.3 * max(outcome.fraud_amount, outcome.cost, 1.0))
    for name, t in _marks(thresholds).items():
        ax.axvline(t, linestyle="--", color="grey", linewidth=0.8)
        # at the foot: the legend takes the top right, where a decline threshold lies
        ax.annotate(f"chosen {name}", (t, 0), rotation=90, va="bottom", ha="right", fontsize=8)
    # a review threshold sits far below a decline one: on a linear axis they touch
    ax.set_xscale("log")
    days = len(w.evaluation.cp_per_day)
    ax.set(
        xlabel="threshold (score, log)",
        ylabel=f"cost over the {days} test days (amount units)",
        title="Cost vs threshold",
    )
    ax.legend(fontsize=7)


def _calibration(ax: Any, w: EvaluatedWindow, *_unused: object) -> None:
    scores, labels = w.evaluation.scores, w.labels
    if 0 < labels.sum() < len(labels):
        # log-spaced bins: with frauds under 1 % of the payments, nearly all scores are
        # small, and even bins put 99 % of the payments in the first
        bin_of = np.searchsorted(_CALIBRATION_EDGES[1:-1], scores, side="right")
        rows = np.bincount(bin_of, minlength=len(_CALIBRATION_EDGES) - 1)
        kept = rows > 0
        sums = [np.bincount(bin_of, weights=v, minlength=len(rows)) for v in (scores, labels)]
        predicted, observed = (total[kept] / rows[kept] for total in sums)
        low, high = _wilson(sums[1][kept], rows[kept])
        # an all-fraud or fraud-free bin: the bound equals the rate, up to rounding
        below, above = np.maximum(observed - low, 0), np.maximum(high - observed, 0)
        ax.errorbar(
            predicted,
            observed,
            yerr=[below, above],
            marker="o",
            capsize=3,
            label="observed, 95 % interval",
        )
        for x, y, n in zip(predicted, observed, rows[kept], strict=True):
            ax.annotate(f"{n:,}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        brier = float(np.mean((scores - labels) ** 2))
        ax.set_title(f"Calibration (Brier score {brier:.5f})")
    ax.plot([1e-4, 1], [1e-4, 1], "--", color="grey", label="perfectly calibrated")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set(xlabel="mean predicted score (log)", ylabel="observed fraud rate", ylim=(0, 1.05))
    ax.legend(fontsize=7)


def _wilson(hits: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a rate: sound for rates near 0 and for small bins."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def _shap_sample(labels: np.ndarray) -> np.ndarray:
    """Every fraud (up to half the sample, unless legitimate payments are fewer) and
    legitimate payments spread over the whole window: an even sample of a window with
    0.7 % frauds holds a dozen of them."""
    frauds, legit = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    keep = min(len(frauds), max(_SHAP_ROWS // 2, _SHAP_ROWS - len(legit)))
    frauds = frauds[np.linspace(0, len(frauds) - 1, keep).astype(np.int64)]
    take = min(len(legit), _SHAP_ROWS - len(frauds))
    legit = legit[np.linspace(0, len(legit) - 1, take).astype(np.int64)] if take else legit[:0]
    return np.sort(np.concatenate([frauds, legit]))


def _shap_plots(plt: Any, out: Path, w: EvaluatedWindow, booster: xgb.Booster) -> dict[str, str]:
    """Mean |SHAP| per feature, and each payment's contributions by feature value."""
    # exact TreeSHAP costs rows x trees x leaves x depth^2: a sample ranks the features
    # as well as more rows would, in seconds
    rows = _shap_sample(w.labels)
    sample = w.features[rows]
    matrix = xgb.DMatrix(sample, feature_names=w.feature_names)
    contribs = booster.predict(matrix, pred_contribs=True)[:, :-1]
    importance = np.abs(contribs).mean(axis=0)
    order = np.argsort(importance)[-_SHAP_FEATURES:]
    names = [w.feature_names[i] for i in order]
    frauds = int(w.labels[rows].sum())
    caption = (
        f"{len(rows):,} test payments, rich in fraud: {frauds:,} frauds, "
        f"{len(rows) - frauds:,} legitimate"
    )
    files: dict[str, str] = {}

    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.barh(names, importance[order])
    ax.set(
        xlabel=f"mean |SHAP contribution| (log-odds) over {caption}",
        title=f"Feature importance (SHAP), top {len(order)} of {len(w.feature_names)}",
    )
    ax.xaxis.label.set_size(8)
    files["SHAP feature importance"] = _save(plt, fig, out / "shap_importance.png")

    fig, ax = plt.subplots(figsize=(8, 6.5))
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(rows))
    for y, i in enumerate(order):
        values = sample[:, i]
        # colour by rank within the sample: amounts and counts have long tails
        finite = np.isfinite(values)
        rank = np.full(len(values), np.nan)
        rank[finite] = pd.Series(values[finite]).rank(pct=True).to_numpy()
        points = ax.scatter(
            contribs[:, i], y + jitter, c=rank, cmap="coolwarm", s=4, vmin=0, vmax=1
        )
        ax.scatter(contribs[~finite, i], y + jitter[~finite], color="grey", s=4)
    ax.set_yticks(range(len(order)), names)
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set(
        xlabel=f"SHAP contribution to the log-odds of fraud\n{caption}",
        title="SHAP summary (colour: the feature's value; grey: missing)",
    )
    ax.xaxis.label.set_size(8)
    ax.title.set_size(10)
    fig.colorbar(points, ax=ax, label="feature value: percentile in the sample (red high)")
    files["SHAP summary"] = _save(plt, fig, out / "shap_summary.png")
    return files
