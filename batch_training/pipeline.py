"""One training run: features, split, fit, evaluate, register, gate, report.

Used by ``fraud train`` (once or on a schedule) and by the demo.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batch_training.champion import judge_candidate, unless_rolled_back
from batch_training.dataset import DataSplit, days_without_payments, fold_splits, split_history
from batch_training.errors import (
    ChampionMovedError,
    ModelRolledBackError,
    OutputWriteError,
    PromotionFailedError,
    TrainingDataError,
)
from batch_training.folds import Evaluation, FoldFeatures, fit_fold
from batch_training.gate import GateDecision
from batch_training.metrics import decision_outcome
from batch_training.model_metadata import ModelMetadata, model_sha256
from batch_training.options import PipelineOptions
from batch_training.reach import run_split
from batch_training.registry import ModelRegistry
from batch_training.report import write_report
from batch_training.report_plots import EvaluatedWindow
from batch_training.train import FittedModel, Progress, prefixed
from feature_store import present_columns

# PipelineOptions is run_training's argument: importable from here too
__all__ = ["PipelineOptions", "TrainingRun", "run_training"]

log = logging.getLogger(__name__)

_FINGERPRINT_ROWS = 1 << 20
_TRAINING_COLUMNS = ("transaction_id", "event_time", "card_id", "amount", "is_fraud")


@dataclass(frozen=True)
class TrainingRun:
    metadata: ModelMetadata
    promoted: bool
    gate: GateDecision
    evaluation: Evaluation
    folds: list[dict[str, Any]]
    train_rows: int
    test_rows: int
    seconds: float
    # where ``seconds`` went: features (with the split), training, gate (the champion's
    # re-scoring), report (register, report, promote)
    stage_seconds: dict[str, float]
    report: Path


class _StageClock:
    """Seconds per stage of a run, so an operator sees which stage grew."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed


def _fingerprint(history: pd.DataFrame) -> str:
    columns = [c for c in _TRAINING_COLUMNS if c in history]
    # row hashes are independent of each other: hashing slices gives the same digest
    # without every id as a Python object at once
    digest = hashlib.sha256()
    selected = history[columns]  # once: selecting copies every row of these columns
    # text that repeats (card ids) hashed as categories: each distinct value once, the same
    # row hashes (not for a column with missing values, which a category hashes otherwise)
    repeated = {
        c: selected[c].astype("category")
        for c in columns
        if c != "transaction_id"
        and isinstance(selected[c].dtype, pd.StringDtype)
        and not selected[c].hasnans
    }
    selected = selected.assign(**repeated)
    for start in range(0, len(history), _FINGERPRINT_ROWS):
        part = selected.iloc[start : start + _FINGERPRINT_ROWS]
        # categorize=False gives the same hashes, without factorising unique ids first
        hashed = pd.util.hash_pandas_object(part, index=False, categorize=False)
        digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _require_training_columns(history: pd.DataFrame) -> None:
    missing = [c for c in _TRAINING_COLUMNS if c not in history.columns]
    if missing:
        fix = (
            "training needs each payment's label in is_fraud: train on a `fraud archive` "
            "directory (payments with the analysts' fraud.labels), or add the column"
            if missing == ["is_fraud"]
            else f"training needs each payment's {', '.join(_TRAINING_COLUMNS)}: add or "
            "rename the column(s) (the handbook's raw file: --columns handbook)"
        )
        raise TrainingDataError(
            f"the history has no {missing} column(s) (it has {sorted(history.columns)}); {fix}"
        )


def _require_both_classes_in_test(history: pd.DataFrame, folds: list[DataSplit]) -> None:
    """AP and ROC AUC need both classes; a test set without them would gate on NaN."""
    fraud = history["is_fraud"].to_numpy(dtype=bool)
    for data in folds:
        frauds = int(fraud[data.test].sum())
        if not 0 < frauds < data.test_rows:
            raise TrainingDataError(
                f"the test window {data.split.describe()['test']} holds {data.test_rows:,} "
                f"rows with {frauds:,} frauds once known-compromised cards are removed; "
                "AP and ROC AUC need both classes: use more --test-days or another "
                "--train-start"
            )


def _known_compromised(history: pd.DataFrame, data: DataSplit) -> dict[str, Any]:
    """How much of the test window the protocol leaves out: payments of cards whose
    fraud was already known, which the metrics do not see; and when a fraud counted as
    known ("label_time", or "delay_days" after it)."""
    rows = data.known_compromised
    fraud = history["is_fraud"].to_numpy(dtype=bool)[rows]
    amounts = history["amount"].to_numpy(dtype=np.float64)[rows]
    return {
        "payments": len(rows),
        "frauds": int(fraud.sum()),
        "fraud_amount": round(float(amounts[fraud].sum()), 2),
        "known_by": data.known_by,
        "frauds_without_label_time": data.frauds_without_label_time,
    }


def _validation_slice(
    history: pd.DataFrame, train: np.ndarray, options: PipelineOptions
) -> dict[str, Any]:
    """The end of the training window (``train``, in time order) that chose the rounds
    and the thresholds."""
    rows = train[options.training.validation_start(len(train)) :]
    times = history["event_time"].iloc[rows]
    return {
        "first": times.min().isoformat(),
        "last": times.max().isoformat(),
        "payments": len(rows),
        "frauds": int(history["is_fraud"].to_numpy()[rows].sum()),
    }


def _fold_aggregates(fold_results: list[dict[str, Any]]) -> dict[str, float]:
    aggregates = {}
    for key in ("roc_auc", "average_precision", "card_precision_at_100", "recall_at_alert_rate"):
        values = [f[key] for f in fold_results]
        aggregates[f"folds_mean_{key}"] = float(np.mean(values))
        aggregates[f"folds_std_{key}"] = float(np.std(values))
    return aggregates


def _write_predictions(path: Path, history: pd.DataFrame, evaluation: Evaluation) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "transaction_id": history["transaction_id"].take(evaluation.rows).to_numpy(),
            "score": evaluation.scores,
        }
    ).to_parquet(path, index=False)


def run_training(
    history: pd.DataFrame,
    *,
    registry: ModelRegistry,
    options: PipelineOptions,
    progress: Progress = lambda _: None,
    detail: Progress = lambda _: None,
    read_since: date | None = None,
    read_until: date | None = None,
    last_event_ms: int | None = None,
) -> TrainingRun:
    """``progress`` hears each stage as it starts; ``detail`` where a long one is.

    ``read_since`` / ``read_until``: the history is a longer one read from that day on
    (see :func:`history_reach`) / before that day (the test window's end), whose last
    event is at ``last_event_ms``; None: it is whole.
    """
    _require_training_columns(history)
    started = time.perf_counter()
    clock = _StageClock()
    with clock.stage("features"):
        split = run_split(history, options, last_event_ms)
        # the fields payments carry before the test window: one only the newer days have
        # (an archive whose older days lack it) would be a constant in training
        before_test = (history["event_time"] < pd.Timestamp(split.test_start, tz="UTC")).to_numpy()
        feature_set = options.feature_set.available_for(present_columns(history, before_test))
        # a history read until a day holds every day before it, even one without payments
        last_day = None if read_until is None else read_until - timedelta(days=1)
        folds = [
            split_history(history, fold, last_day=last_day)
            for fold in fold_splits(split, options.folds)
        ]
        _require_both_classes_in_test(history, folds)
        features = FoldFeatures.compute(
            feature_set, history, folds, label_delay_s=options.label_delay_s, progress=progress
        )
        empty_days = sorted(
            {d for f in folds for d in days_without_payments(features.days, f.split)}
        )
        if empty_days:
            log.warning(
                "no payments on %s, in the windows of this run: the history (an archive, "
                "after an outage of the archiver?) misses them; the model trains and is "
                "tested on the other days",
                ", ".join(map(str, empty_days)),
            )
    fold_results: list[dict[str, Any]] = []
    fitted_folds: list[tuple[FittedModel, Evaluation]] = []
    for k, data in enumerate(folds):
        window = data.split.describe()
        progress(f"fold {k + 1}/{options.folds}: train {window['train']}, test {window['test']}")
        fold_detail = prefixed(detail, f"fold {k + 1}/{options.folds}")
        with clock.stage("training"):
            fitted_folds.append(fit_fold(features, data, options.training, fold_detail))
        fold_results.append(
            {
                "fold": k + 1,  # as the progress lines number them ("fold 1/3")
                **window,
                **fitted_folds[-1][1].metrics,
                "train_rows": data.train_rows,
                "test_rows": data.test_rows,
            }
        )
    # the candidate is the latest fold's model; earlier folds only measure the spread
    (fitted, evaluation), data = fitted_folds[0], folds[0]
    progress("comparing with the champion on the same test window")
    with clock.stage("gate"):
        champion_version, champion, gate = judge_candidate(
            registry, evaluation, data, features, options, read_since
        )
        gate = unless_rolled_back(gate, registry, model_sha256(fitted.booster))
        labels, amounts = features.labels_and_amounts(data)
        test_cost = decision_outcome(
            evaluation.scores,
            labels,
            amounts,
            fitted.thresholds.review,
            fitted.thresholds.decline,
            options.training.cost,
        ).cost
        metrics = {
            **evaluation.metrics,
            "test_cost": test_cost,
            "validation_average_precision": fitted.validation_ap,
        }
        if options.folds > 1:
            metrics |= _fold_aggregates(fold_results)
    train_times = history["event_time"].iloc[data.train]
    if gate.promote and not options.promote:  # before registering: the metadata says so too
        gate = GateDecision(
            True,
            f"{gate.reason}; but this run only registers (--no-promote); "
            "`fraud models promote` the version it registers to make it the champion",
        )
    test_window = EvaluatedWindow(
        evaluation,
        labels,
        amounts,
        features.take(data.test),
        features.names,
        history["fraud_scenario"].to_numpy()[data.test] if "fraud_scenario" in history else None,
    )
    promoted = gate.promote and options.promote

    def report(meta: ModelMetadata, version_dir: Path, gate: GateDecision, promoted: bool) -> Path:
        """The report of ``meta``, in ``version_dir`` unless --report-dir says elsewhere."""
        out = options.report_dir or version_dir / "report"
        try:
            return write_report(
                out,
                metadata=meta,
                window=test_window,
                booster=fitted.booster,
                cost=options.training.cost,
                gate=gate,
                promoted=promoted,
                champion=champion,
            )
        except OSError as exc:  # a full disk's names no file
            raise OutputWriteError("the report", out, exc) from exc

    def before_publish(meta: ModelMetadata, version_dir: Path) -> None:
        # the predictions and the report are written before the version appears: a run
        # that fails or is killed here leaves no version the gate would let through
        if options.predictions_out is not None:
            try:
                _write_predictions(options.predictions_out, history, evaluation)
            except OSError as exc:
                raise OutputWriteError("the predictions", options.predictions_out, exc) from exc
        report(meta, version_dir, gate, promoted)
        # a stop requested while the report was written (seconds of plots) ends the run
        # here, before the version appears; after it, the run completes
        detail("registering the version")

    # the last stage report, so a stop requested here leaves no version behind
    progress("writing the report")
    with clock.stage("report"):
        meta = registry.register(
            fitted.booster,
            before_publish=before_publish,
            created_at=datetime.now(UTC).isoformat(),
            feature_set_name=feature_set.name,
            feature_set_version=feature_set.version,
            feature_set_fingerprint=feature_set.fingerprint,
            feature_names=tuple(features.names),
            thresholds=fitted.thresholds,
            metrics=metrics,
            training_window={
                "start": train_times.min().isoformat(),
                "end": train_times.max().isoformat(),
                **{f"split_{k}": v for k, v in split.describe().items()},
            },
            extra={
                "data_fingerprint": _fingerprint(history),
                # what the fingerprint covers: the history, or its days from this one on
                "history_rows": len(history),
                "history_first_day_read": None if read_since is None else str(read_since),
                "history_end_day_read": None if read_until is None else str(read_until),
                "days_without_payments": [str(d) for d in empty_days],
                # an archive may start after the first day the run asked for
                "history_first_payment_day": str(history["event_time"].min().date()),
                "params": {k: v for k, v in fitted.params.items() if k != "nthread"},
                "rounds": fitted.rounds,
                "candidates": fitted.candidates,
                "selection": fitted.selection,
                "search_rows": fitted.search_rows,
                "train_rows": data.train_rows,
                "known_compromised_left_out": _known_compromised(history, data),
                "validation_slice": _validation_slice(
                    history, features.in_time_order(data.train), options
                ),
                "folds": fold_results,
                "gate": {
                    "promote": gate.promote,
                    "reason": gate.reason,
                    "champion": champion_version,
                    "champion_metrics": champion,
                },
                "cost_model": vars(options.training.cost),
                "alert_rate": options.training.alert_rate,
                "review_capacity": options.training.review_capacity,
                "label_delay_s": options.label_delay_s,
            },
        )
        published = registry.version_dir(meta.version)
        report_path = (options.report_dir or published / "report") / "index.html"
        # promotion comes last, so a failed step above never leaves a champion behind it
        if promoted:
            try:
                registry.promote(meta.version, expected=champion_version, refuse_rolled_back=True)
            # an operator promoted or rolled back meanwhile
            except (ChampionMovedError, ModelRolledBackError) as exc:
                promoted, gate = False, GateDecision(False, str(exc), ranked_above=True)
                try:
                    report_path = report(meta, published, gate, promoted)
                except OutputWriteError:  # registered: the run's outcome stands, said here
                    log.exception("the report of version %d could not be rewritten", meta.version)
            except Exception as exc:  # the report must not say "promoted"
                try:
                    failed = GateDecision(False, f"the promotion failed: {exc}", ranked_above=True)
                    report(meta, published, failed, False)
                except Exception:  # e.g. the same full disk: the promotion's error is the news
                    log.exception("the report of version %d could not be rewritten", meta.version)
                raise PromotionFailedError(meta.version, exc) from exc
    return TrainingRun(
        metadata=meta,
        promoted=promoted,
        gate=gate,
        evaluation=evaluation,
        folds=fold_results,
        train_rows=data.train_rows,
        test_rows=data.test_rows,
        seconds=time.perf_counter() - started,
        stage_seconds=clock.seconds,
        report=report_path,
    )
