"""The training report risk teams read: an HTML page with PNG plots, and metrics.json."""

from __future__ import annotations

import html
import json
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import xgboost as xgb

from batch_training.formatting import apart
from batch_training.gate import GateDecision
from batch_training.metrics import CostModel, DecisionOutcome, decision_outcome
from batch_training.model_metadata import ModelMetadata
from batch_training.report_plots import EvaluatedWindow, write_plots

__all__ = ["write_report"]

_METRIC_NAMES = {
    "roc_auc": "ROC AUC",
    "average_precision": "average precision",
    "card_precision_at_100": "card precision@100",
    "recall_at_alert_rate": "recall at the alert rate",
    "test_cost": "cost of the decisions",
    "validation_average_precision": "average precision on the validation slice",
}
_MONEY_METRICS = {"test_cost"}


def _fmt(value: Any, metric: str = "", *, sign: bool = False) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        # money in whole units; rates and ranking scores to four places
        spec = ",.0f" if metric in _MONEY_METRICS else ".4f"
        return format(value, ("+" if sign else "") + spec)
    return html.escape(str(value))


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _share(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _payments(extra: dict[str, Any]) -> str:
    """The training window's size in words, when the metadata records it."""
    train_rows = extra.get("train_rows")
    return f" ({train_rows:,} payments)" if train_rows is not None else ""


def write_report(
    out: Path,
    *,
    metadata: ModelMetadata,
    window: EvaluatedWindow,
    booster: xgb.Booster,
    cost: CostModel,
    gate: GateDecision,
    promoted: bool,
    champion: dict[str, float] | None,
) -> Path:
    """Write ``index.html``, its PNGs and ``metrics.json`` to ``out``; return the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    thresholds = (metadata.thresholds.review, metadata.thresholds.decline)
    evaluation, labels = window.evaluation, window.labels
    outcome = decision_outcome(evaluation.scores, labels, window.amounts, *thresholds, cost)
    files = write_plots(out, window, booster, cost, thresholds, outcome)
    by_scenario = _outcomes_by_scenario(window, thresholds, cost)
    summary = {
        "model_version": metadata.version,
        "promoted": promoted,
        "gate": gate.reason,
        "metrics": metadata.metrics,
        "champion_metrics": champion,
        "thresholds": {"review": thresholds[0], "decline": thresholds[1]},
        "decisions": _decisions_summary(outcome),
        "frauds_by_scenario": {
            scenario: _scenario_summary(found) for scenario, found in by_scenario.items()
        },
        "costs": {**vars(cost), "currency": "the history's amount units"},
        "alert_rate": metadata.extra.get("alert_rate"),
        "card_precision_at_100_by_day": [
            {"day": str(d.calendar_day), "value": d.precision, "most": d.ceiling}
            for d in evaluation.cp_per_day
        ],
        "champion_version": metadata.extra.get("gate", {}).get("champion"),
        "training_window": metadata.training_window,
        "validation_slice": metadata.extra.get("validation_slice"),
        "test_rows": len(labels),
        "test_frauds": int(labels.sum()),
        "known_compromised_left_out": metadata.extra.get("known_compromised_left_out"),
        "folds": metadata.extra.get("folds", []),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
    images = "".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(title)}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, name in files.items()
    )
    verdict = "promoted to champion" if promoted else "registered as a challenger"
    capacity = metadata.extra.get("review_capacity")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model v{metadata.version}: training report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
td.n{{text-align:right}}tr.chosen{{font-weight:bold}}
figure{{display:inline-block;margin:8px}}img{{max-width:520px}}</style></head><body>
<h1>Model v{metadata.version}: {verdict}</h1>
<p><b>Promotion gate</b>{_against(metadata.extra)}: {html.escape(gate.reason)}</p>
{_data_section(metadata, len(window.feature_names), len(labels), int(labels.sum()))}
<h2>Decisions on the test window</h2>
{_decisions_section(outcome, thresholds, len(evaluation.cp_per_day), capacity)}
{_scenarios_section(by_scenario)}
<h2>Metrics on the test window</h2>
{_metrics_section(metadata.metrics, champion, metadata.extra.get("alert_rate"))}
{_metrics_notes(metadata.metrics, champion, gate.passed_comparison)}
<h2>How the model was trained</h2>
{_training_section(metadata.extra)}
<h2>Prequential folds</h2>
{_folds_section(summary["folds"])}
<h2>Plots</h2>{images}
</body></html>"""
    path = out / "index.html"
    path.write_text(page)
    return path


def _against(extra: dict[str, Any]) -> str:
    champion = extra.get("gate", {}).get("champion")
    if champion is None:
        return ""
    return f" (against champion v{champion}, re-scored on this test window)"


def _data_section(metadata: ModelMetadata, features: int, test_rows: int, frauds: int) -> str:
    window = metadata.training_window
    rows = _payments(metadata.extra)
    name = html.escape(metadata.feature_set_name)
    return f"""<p>Feature set {name} v{metadata.feature_set_version}
({features} features, fingerprint {metadata.feature_set_fingerprint[:12]}).</p>
<p>Trained on {html.escape(str(window.get("split_train", "")))}{rows}; then
{html.escape(str(window.get("split_delay_days", "?")))} days between, as the labels' delay;
tested on {html.escape(str(window.get("split_test", "")))}: {test_rows:,} payments,
{frauds:,} frauds.
{_left_out(metadata.extra.get("known_compromised_left_out"), test_rows, frauds)}</p>
{_validation(metadata.extra.get("validation_slice"))}
{_history_read(metadata.extra)}"""


def _left_out(known: dict[str, Any] | None, test_rows: int, frauds: int) -> str:
    """The protocol's removal of known-compromised cards, in numbers: every figure below
    is over what is left."""
    if known is None:  # a version registered before this was recorded
        return "Cards already known to be compromised are left out of the test."
    share = _share(known["frauds"], known["frauds"] + frauds)
    return (
        f"Left out of the test, as the protocol has it: {known['payments']:,} more payments "
        f"of the window, of cards already known to be compromised ({_known(known)}), "
        f"with {known['frauds']:,} frauds "
        f"({share} of the window's frauds, amount {_money(known['fraud_amount'])}). "
        "The protocol assumes "
        "such cards are blocked once a fraud on them is known; the figures below are over the "
        f"{test_rows:,} payments left."
    )


def _known(known: dict[str, Any]) -> str:
    """When a fraud counted as known: the rule the split followed."""
    delay_rule = "one made more than the delay before the test day"
    if known.get("known_by") == "label_time":
        rule = "a fraud whose label, by the history's label_time, came before the test day"
        if unlabelled := known.get("frauds_without_label_time"):
            rule += f"; for {unlabelled:,} frauds without a label time, {delay_rule}"
        return rule
    return f"a fraud in training, or {delay_rule}"


def _validation(slice_: dict[str, Any] | None) -> str:
    if slice_ is None:
        return ""
    first, last = (slice_[k][:16].replace("T", " ") for k in ("first", "last"))
    return (
        f"<p>Validation slice, the end of the training window: {first} .. {last} UTC, "
        f"{slice_['payments']:,} payments with {slice_['frauds']:,} frauds. It chose the "
        "candidate, the number of rounds and the thresholds; the model was then refitted on "
        "the whole training window, this slice included.</p>"
    )


def _history_read(extra: dict[str, Any]) -> str:
    """How much of the history the run read: an archive is read from the first day its
    features and the champion's need."""
    rows = extra.get("history_rows")
    if rows is None:  # a version registered before this was recorded
        return ""
    first_day, end_day = extra.get("history_first_day_read"), extra.get("history_end_day_read")
    where = "all of it"
    if first_day and end_day:  # end_day is the first day not read
        last_day = date.fromisoformat(end_day) - timedelta(days=1)
        where = f"its days {html.escape(first_day)} .. {last_day}"
    elif first_day:
        where = f"its days from {html.escape(first_day)} on"
    first_payment = extra.get("history_first_payment_day")
    if first_day and first_payment and first_payment > first_day:
        where += f" (it starts on {html.escape(first_payment)})"
    empty = extra.get("days_without_payments") or []
    gaps = (
        f" It holds no payments on {html.escape(', '.join(empty))}, days of the windows: "
        "the figures per test day are over the days that have payments."
        if empty
        else ""
    )
    return f"<p>Read {rows:,} payments of the history: {where}.{gaps}</p>"


def _scenario_summary(frauds: DecisionOutcome) -> dict[str, float]:
    """What the thresholds did to one scenario's frauds (only frauds: nothing legitimate)."""
    return {
        "frauds": frauds.frauds,
        "declined": frauds.frauds_declined,
        "reviewed": frauds.frauds_reviewed,
        "passed": frauds.frauds_passed,
        "fraud_amount": frauds.fraud_amount,
        "missed_fraud_amount": frauds.missed_fraud_amount,
    }


def _decisions_summary(outcome: DecisionOutcome) -> dict[str, float]:
    return {
        "payments": outcome.payments,
        "declined": outcome.declined,
        "frauds_declined": outcome.frauds_declined,
        "legitimate_declined": outcome.legitimate_declined,
        "reviewed": outcome.reviewed,
        "frauds_reviewed": outcome.frauds_reviewed,
        "declined_fraud_amount": outcome.declined_fraud_amount,
        "reviewed_fraud_amount": outcome.reviewed_fraud_amount,
        "missed_fraud_amount": outcome.missed_fraud_amount,
        "cost": outcome.cost,
        "cost_without_action": outcome.fraud_amount,
    }


def _decisions_section(
    outcome: DecisionOutcome, thresholds: tuple[float, float], days: int, capacity: int | None
) -> str:
    passed = outcome.payments - outcome.declined - outcome.reviewed
    rows = "".join(
        f"<tr><td>{action}</td><td class=n>{n:,}</td>"
        f"<td class=n>{n / max(days, 1):,.0f}</td><td class=n>{frauds:,}</td>"
        f"<td class=n>{_share(frauds, outcome.frauds)}</td>"
        f"<td class=n>{_share(amount, outcome.fraud_amount)}</td></tr>"
        for action, n, frauds, amount in (
            ("decline", outcome.declined, outcome.frauds_declined, outcome.declined_fraud_amount),
            ("review", outcome.reviewed, outcome.frauds_reviewed, outcome.reviewed_fraud_amount),
            ("pass", passed, outcome.frauds_passed, outcome.missed_fraud_amount),
        )
    )
    fees = outcome.fees
    saved = outcome.fraud_amount - outcome.cost
    decline = _threshold("decline", thresholds[1])
    review = _threshold("review", thresholds[0])
    if thresholds[1] <= thresholds[0] <= 1.0:
        # stored equal to decline: no score lies between them, so nothing is reviewed
        review = (
            f"never review (the review threshold, {thresholds[0]:.4f}, is not below the "
            "decline one)"
        )
    if capacity is None:
        limit = ""
    else:
        per_day = outcome.reviewed / max(days, 1)
        verdict = "within it" if per_day <= capacity else "<b>more than the capacity</b>"
        limit = (
            f", within the analysts' capacity of {capacity:,} reviews a day there; on the test"
            f" window {per_day:,.1f} reviews a day, {verdict}"
        )
    return f"""<p>Thresholds: {review}, {decline},
chosen on the validation slice to minimise the cost below{limit}.</p>
<table><tr><th>action</th><th>payments</th><th>per test day</th><th>frauds</th>
<th>share of the frauds</th><th>share of the fraud amount</th></tr>{rows}</table>
<p><b>Cost</b> in the history's amount units (a missed fraud costs its amount; a
declined or reviewed fraud is taken as stopped; each review costs {fees.review_fee:g},
declining a legitimate payment {fees.decline_fee:g}, declining a fraud nothing):
{_money(outcome.cost)} with these thresholds, {_money(outcome.cost / max(days, 1))} a day
(missed fraud {_money(outcome.missed_fraud_amount)}, {outcome.reviewed:,} reviews,
{outcome.legitimate_declined:,} legitimate payment(s) declined), against
{_money(outcome.fraud_amount)} with no action (every fraud missed):
{_savings(saved, outcome)}.</p>"""


def _savings(saved: float, outcome: DecisionOutcome) -> str:
    if saved >= 0:
        return f"{_money(saved)} or {_share(saved, outcome.fraud_amount)} less"
    return f"<b>{_money(-saved)} more</b>: on this window acting cost more than doing nothing"


def _outcomes_by_scenario(
    window: EvaluatedWindow, thresholds: tuple[float, float], cost: CostModel
) -> dict[str, DecisionOutcome]:
    """What the thresholds do to the frauds of each scenario (empty without scenarios)."""
    if window.scenarios is None:
        return {}
    fraud = window.labels == 1
    named = pd.Series(window.scenarios[fraud]).fillna("unknown").astype(str).to_numpy()
    scores, labels, amounts = (
        a[fraud] for a in (window.evaluation.scores, window.labels, window.amounts)
    )
    return {
        scenario: decision_outcome(
            scores[named == scenario],
            labels[named == scenario],
            amounts[named == scenario],
            *thresholds,
            cost,
        )
        for scenario in sorted(set(named))
    }


def _scenarios_section(by_scenario: dict[str, DecisionOutcome]) -> str:
    if not by_scenario:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(scenario)}</td><td class=n>{o.frauds:,}</td>"
        f"<td class=n>{o.frauds_declined:,}</td><td class=n>{o.frauds_reviewed:,}</td>"
        f"<td class=n>{o.frauds_passed:,}</td>"
        f"<td class=n>{_share(o.frauds_declined + o.frauds_reviewed, o.frauds)}</td>"
        f"<td class=n>{_money(o.missed_fraud_amount)}</td></tr>"
        for scenario, o in by_scenario.items()
    )
    return f"""<h3>Frauds by scenario</h3>
<p>Which kinds of fraud the thresholds stop and which pass (the history's
<code>fraud_scenario</code>).</p>
<table><tr><th>scenario</th><th>frauds</th><th>declined</th><th>reviewed</th><th>passed</th>
<th>caught</th><th>missed amount</th></tr>{rows}</table>"""


def _metrics_section(
    metrics: dict[str, float], champion: dict[str, float] | None, alert_rate: float | None
) -> str:
    rows = ""
    for key, value in metrics.items():
        theirs = champion.get(key, float("nan")) if champion else float("nan")
        difference = value - theirs
        name = _metric_name(key)
        if key == "recall_at_alert_rate" and alert_rate is not None:
            name = f"recall at a {100 * alert_rate:g} % alert rate"
        rows += (
            f"<tr><td>{html.escape(name)}</td>"
            f"<td class=n>{_fmt(value, key)}</td>"
            f"<td class=n>{_fmt(theirs, key) if champion else ''}</td>"
            f"<td class=n>{_fmt(difference, key, sign=True) if champion else ''}</td></tr>"
        )
    return (
        "<table><tr><th>metric</th><th>this model</th><th>champion</th><th>difference</th></tr>"
        f"{rows}</table>"
    )


def _metric_name(key: str) -> str:
    for prefix, words in (
        ("folds_mean_", "mean over the folds"),
        ("folds_std_", "sd over the folds"),
    ):
        if key.startswith(prefix):
            return f"{_metric_name(key.removeprefix(prefix))}, {words}"
    return _METRIC_NAMES.get(key, key)


def _metrics_notes(
    metrics: dict[str, float], champion: dict[str, float] | None, passed_gate: bool
) -> str:
    """What the table alone does not say: a fall from validation to test, and a gate
    verdict the cost of the decisions disagrees with (the gate ranks, it does not price)."""
    notes = []
    validation, test = metrics.get("validation_average_precision"), metrics["average_precision"]
    if validation is not None and validation - test > 0.05:
        notes.append(
            f"Average precision fell from {validation:.4f} on the validation slice to "
            f"{test:.4f} on the test window. Part of a fall is the slice's optimism (it "
            "chose the model); more can mean the fraud changed between the windows: compare "
            "the prequential folds (below; more of them with --folds)."
        )
    theirs = (champion or {}).get("test_cost")
    mine = metrics.get("test_cost")
    if theirs is not None and mine is not None and not passed_gate and mine < theirs:
        notes.append(
            f"It did not pass the gate, yet its decisions cost {_money(theirs - mine)} less "
            "than the champion's on this window: the gate compares ranking (average "
            "precision, card precision@100), not cost. `fraud models promote` it with "
            "--force if cost is what matters here."
        )
    elif theirs is not None and mine is not None and passed_gate and mine > theirs:
        notes.append(
            f"It passed the gate, though its decisions cost {_money(mine - theirs)} more than "
            "the champion's on this window: the gate compares ranking, not cost."
        )
    return "".join(f"<p>{note}</p>" for note in notes)


def _training_section(extra: dict[str, Any]) -> str:
    candidates, selection = extra.get("candidates"), extra.get("selection")
    if not candidates or not selection:
        return "<p>Not recorded for this version.</p>"
    rows = ""
    for n, candidate in enumerate(candidates, 1):
        params = candidate["params"]
        role = ", ".join(
            label
            for label, on in (
                ("the defaults", n == 1),
                ("highest validation AP", n == selection["highest"]),
                ("chosen", n == selection["chosen"]),
            )
            if on
        )
        rows += (
            f"<tr{' class=chosen' if n == selection['chosen'] else ''}><td>{n}</td>"
            f"<td class=n>{params['scale_pos_weight']:g}</td><td class=n>{params['max_depth']}</td>"
            f"<td class=n>{params['eta']:g}</td><td class=n>{params['min_child_weight']:g}</td>"
            f"<td class=n>{candidate['rounds']:,}</td>"
            f"<td class=n>{candidate['validation_ap']:.4f}</td><td>{role}</td></tr>"
        )
    params = extra.get("params", {})
    settings = ", ".join(
        f"{k} {params[k]}"
        for k in ("max_depth", "eta", "max_bin", "subsample", "colsample_bytree", "seed")
        if k in params
    )
    window = _payments(extra)
    return f"""<p>XGBoost, early-stopped on the validation slice (the most recent part of the
training window). Each candidate trained for at most the same first rounds, fewer if
validation stopped improving, and was scored there by average precision; the chosen one
then trained on to its early stop, unless it had stopped already.</p>
<table><tr><th>candidate</th><th>class weight</th><th>depth</th><th>learning rate</th>
<th>min child weight</th><th>best round</th><th>validation AP</th><th></th></tr>{rows}</table>
<p>{_selection_text(selection)} The model is that configuration refitted on the whole
training window{window} for {extra.get("rounds", 0):,} rounds, the number validation found
best. The search fitted on {extra.get("search_rows", 0):,} rows of the window's earlier
part. Settings: {html.escape(settings)}.</p>"""


def _selection_text(selection: dict[str, Any]) -> str:
    highest, chosen = selection["highest"], selection["chosen"]
    gain, se = selection.get("gain"), selection.get("gain_se")
    if highest == chosen == 1:
        return "The defaults (candidate 1) validated highest."
    if gain is None or se is None:
        return f"Candidate {chosen} validated highest and was taken."
    gain_text, se_text = apart(gain, se)
    if chosen == highest:
        ratio = f", {gain / se:.2f} standard errors of that gain" if se > 0 else ""
        return (
            f"Candidate {chosen} validated {gain_text} above the defaults{ratio}: "
            "beyond the noise, so it replaced them."
        )
    return (
        f"Candidate {highest} validated highest, but its gain over the defaults "
        f"({gain_text}) is within the noise (standard error {se_text}), so the defaults "
        "were kept."
    )


def _folds_section(folds: list[dict[str, Any]]) -> str:
    keys = ("fold", "train", "test", "roc_auc", "average_precision", "card_precision_at_100")
    rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(f[k])}</td>" for k in keys) + "</tr>" for f in folds
    )
    return (
        "<table><tr><th>fold</th><th>train</th><th>test</th><th>AUC</th><th>AP</th>"
        f"<th>CP@100</th></tr>{rows}</table>"
    )


def _threshold(action: str, threshold: float) -> str:
    # NEVER_ACT is a hair above 1.0: printed as 1.0000 it would read "act on a perfect score"
    return f"never {action}" if threshold > 1.0 else f"{action} at score &ge; {threshold:.4f}"
