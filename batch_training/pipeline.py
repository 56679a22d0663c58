"""One training run: features, split, fit, evaluate, register, gate, report.

Used by ``fraud train`` (once or on a schedule) and by the demo.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from batch_training.dataset import (
    DataSplit,
    TimeSplit,
    complete_test_end,
    day_index,
    fold_splits,
    latest_split,
    split_history,
)
from batch_training.errors import (
    ChampionMovedError,
    ModelIntegrityError,
    RegistryError,
    TrainingConfigError,
    TrainingDataError,
)
from batch_training.gate import GateDecision, promotion_gate
from batch_training.metrics import CostModel, decision_outcome, summary_metrics
from batch_training.model_features import feature_set_of
from batch_training.registry import ModelMetadata, ModelRegistry
from batch_training.report import write_report
from batch_training.report_plots import EvaluatedWindow
from batch_training.train import FittedModel, Progress, TrainingConfig, fit_model, prefixed
from feature_store import FeaturePlan, FeatureSet
from feature_store.offline import DEFAULT_LABEL_DELAY_S, offline_feature_matrix

__all__ = [
    "Evaluation",
    "FoldFeatures",
    "HistoryReach",
    "PipelineOptions",
    "TrainingRun",
    "fit_fold",
    "history_reach",
    "run_training",
]

_FINGERPRINT_ROWS = 1 << 20


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    feature_set: FeatureSet
    train_start: datetime | None = None
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    folds: int = 1
    label_delay_s: int = DEFAULT_LABEL_DELAY_S
    training: TrainingConfig = field(default_factory=TrainingConfig)
    cp_tolerance: float = 0.01
    promote: bool = True
    report_dir: Path | None = None
    predictions_out: Path | None = None

    def __post_init__(self) -> None:
        # the split's own checks, now: a schedule would otherwise fail at every tick
        split = TimeSplit(
            train_start=date(2000, 1, 1),
            train_days=self.train_days,
            delay_days=self.delay_days,
            test_days=self.test_days,
        )
        fold_splits(split, self.folds)
        if self.label_delay_s < 0:
            raise TrainingConfigError(
                f"label_delay_s={self.label_delay_s} must be >= 0 (--label-delay-days)"
            )
        if self.cp_tolerance < 0:
            raise TrainingConfigError(
                f"cp_tolerance={self.cp_tolerance} must be >= 0 (--cp-tolerance)"
            )


@dataclass(frozen=True)
class Evaluation:
    split: TimeSplit
    metrics: dict[str, float]
    cp_per_day: list[float]
    scores: np.ndarray
    rows: np.ndarray


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
    columns = [
        c for c in ("transaction_id", "event_time", "card_id", "amount", "is_fraud") if c in history
    ]
    # row hashes are independent of each other: hashing slices gives the same digest
    # without every id as a Python object at once
    digest = hashlib.sha256()
    selected = history[columns]  # once: selecting copies every row of these columns
    for start in range(0, len(history), _FINGERPRINT_ROWS):
        part = selected.iloc[start : start + _FINGERPRINT_ROWS]
        # categorize=False gives the same hashes, without factorising unique ids first
        hashed = pd.util.hash_pandas_object(part, index=False, categorize=False)
        digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class FoldFeatures:
    """Features of the rows some folds train and test on, one row each.

    ``rows`` are sorted, unique positions in ``history``; ``days`` and ``ts`` (epoch ms)
    cover every history row. Build with :meth:`compute`.
    """

    history: pd.DataFrame
    feature_set: FeatureSet
    rows: np.ndarray
    matrix: np.ndarray
    days: np.ndarray
    ts: np.ndarray

    @classmethod
    def compute(
        cls,
        feature_set: FeatureSet,
        history: pd.DataFrame,
        folds: list[DataSplit],
        *,
        label_delay_s: int = DEFAULT_LABEL_DELAY_S,
        progress: Progress = lambda _: None,
    ) -> FoldFeatures:
        # features only for the rows the folds train and test on; their windows still see
        # every earlier row of the history
        rows = np.unique(np.concatenate([part for d in folds for part in (d.train, d.test)]))
        progress(
            f"computing {len(feature_set.features)} features for {len(rows):,} "
            f"of {len(history):,} rows"
        )
        matrix = offline_feature_matrix(
            feature_set, history, rows, label_delay_s=label_delay_s, dtype=np.float32
        )
        ts = history["event_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
        return cls(history, feature_set, rows, matrix, day_index(history), ts)

    @property
    def names(self) -> list[str]:
        """The feature names, in the matrix's column order."""
        return list(self.feature_set.names)

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Feature rows of these history positions (all among ``rows``)."""
        index = np.searchsorted(self.rows, positions)
        if len(index) and (
            index.max() >= len(self.rows) or not np.array_equal(self.rows[index], positions)
        ):
            raise TrainingDataError(
                f"{len(positions):,} positions include rows whose features were not computed "
                f"(only {len(self.rows):,} were); pass their split in the folds of "
                "FoldFeatures.compute"
            )
        return self.matrix[index]

    def columns_of(self, other: FeatureSet) -> list[int] | None:
        """Where each of ``other``'s features is in ``matrix``, when every one of them is
        among these and defined identically; otherwise None. The values agree to float32
        precision: rolling sums over a longer history may differ in float64's last bits."""
        mine = {f.name: (i, f) for i, f in enumerate(self.feature_set.features)}
        found = [mine.get(f.name) for f in other.features]
        if any(m is None or m[1] != f for m, f in zip(found, other.features, strict=True)):
            return None
        return [m[0] for m in found if m is not None]

    def evaluate(self, scores: np.ndarray, data: DataSplit, alert_rate: float) -> Evaluation:
        labels = self.history["is_fraud"].to_numpy(dtype=np.int8)[data.test]
        cards = self.history["card_id"].take(data.test).to_numpy()  # only the test rows
        metrics, per_day = summary_metrics(
            scores=scores,
            labels=labels,
            days=self.days[data.test],
            cards=cards,
            alert_rate=alert_rate,
        )
        return Evaluation(
            split=data.split, metrics=metrics, cp_per_day=per_day, scores=scores, rows=data.test
        )


def fit_fold(
    features: FoldFeatures,
    data: DataSplit,
    config: TrainingConfig,
    progress: Progress = lambda _: None,
) -> tuple[FittedModel, Evaluation]:
    """Fit on the fold's training window (in time order); score its test set."""
    history = features.history
    train = data.train[np.argsort(features.ts[data.train], kind="stable")]
    labels = history["is_fraud"].to_numpy(dtype=np.int8)
    amounts = history["amount"].to_numpy(dtype=np.float64)
    fitted = fit_model(
        features.take(train),
        labels[train],
        amounts[train],
        features.names,
        config,
        progress,
        event_ms=features.ts[train],
    )
    test_matrix = xgb.DMatrix(features.take(data.test), feature_names=features.names)
    scores = fitted.booster.predict(test_matrix)
    return fitted, features.evaluate(scores, data, config.alert_rate)


def _champion_evaluation(
    registry: ModelRegistry,
    version: int,
    data: DataSplit,
    features: FoldFeatures,
    label_delay_s: int,
    alert_rate: float,
    cost: CostModel,
    read_since: date | None,
) -> dict[str, float]:
    """The champion's metrics on the candidate's test set (``features`` are the
    candidate's), with the cost of its own thresholds' decisions there under today's
    ``cost`` model.

    Raises :class:`ModelIntegrityError` when the champion cannot be served: its file was
    altered, or this release no longer computes its features; :class:`_BeyondTheRead`
    when its features reach back before ``read_since``, the first day read.
    """
    champion = registry.load(version)
    meta = champion.metadata
    champion_set = feature_set_of(meta)
    needed = FeaturePlan(champion_set).first_day_read(data.split.test_start)
    if read_since is not None and needed < read_since:
        raise _BeyondTheRead(
            f"champion v{version} ({champion_set.name} features) needs the history from "
            f"{needed}, and this run read from {read_since}: it became champion after the "
            "run began. The candidate stays a challenger; the next run compares the two"
        )
    columns = features.columns_of(champion_set)
    if columns is not None:  # e.g. a `core` champion under an `extended` candidate
        test_features = features.take(data.test)[:, columns]
    else:  # features the candidate's set does not have: the champion's, for the test rows
        test_features = offline_feature_matrix(
            champion_set,
            features.history,
            data.test,
            label_delay_s=label_delay_s,
            dtype=np.float32,
        )
    matrix = xgb.DMatrix(test_features, feature_names=list(meta.feature_names))
    scores = champion.booster.predict(matrix)
    outcome = decision_outcome(
        scores,
        *_test_labels_and_amounts(features.history, data),
        meta.thresholds.review,
        meta.thresholds.decline,
        cost,
    )
    return features.evaluate(scores, data, alert_rate).metrics | {"test_cost": outcome.cost}


def _test_labels_and_amounts(
    history: pd.DataFrame, data: DataSplit
) -> tuple[np.ndarray, np.ndarray]:
    """The test rows' labels and amounts, as the cost of a decision policy needs them."""
    test = data.test
    return (
        history["is_fraud"].to_numpy(dtype=np.int8)[test],
        history["amount"].to_numpy(dtype=np.float64)[test],
    )


class _BeyondTheRead(Exception):
    """The champion's features need days of the history that the run did not read."""


def _judge(
    registry: ModelRegistry,
    candidate: Evaluation,
    data: DataSplit,
    features: FoldFeatures,
    options: PipelineOptions,
    read_since: date | None,
) -> tuple[int | None, dict[str, float] | None, GateDecision]:
    """The champion's version, its metrics on the candidate's test set, and the gate's
    verdict on the candidate (``features`` are the candidate's)."""
    version = registry.champion_version()
    champion = None
    if version is not None:
        try:
            champion = _champion_evaluation(
                registry,
                version,
                data,
                features,
                options.label_delay_s,
                options.training.alert_rate,
                options.training.cost,
                read_since,
            )
        except _BeyondTheRead as exc:
            return version, None, GateDecision(False, str(exc))
        except ModelIntegrityError as exc:  # no worker of this release serves it: replace it
            reason = f"the champion cannot be served ({exc}); the candidate replaces it"
            return version, None, GateDecision(True, reason)
    gate = promotion_gate(candidate.metrics, champion, cp_tolerance=options.cp_tolerance)
    return version, champion, gate


_TRAINING_COLUMNS = ("transaction_id", "event_time", "card_id", "amount", "is_fraud")


def _require_training_columns(history: pd.DataFrame) -> None:
    missing = [c for c in _TRAINING_COLUMNS if c not in history.columns]
    if missing:
        raise TrainingDataError(
            f"the history has no {missing} column(s) (it has {sorted(history.columns)}); "
            "training needs each payment's label in is_fraud: train on a `fraud archive` "
            "directory (payments with the analysts' fraud.labels), or add the column"
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


@dataclass(frozen=True)
class HistoryReach:
    """The days of a history a run reads, ``first_day`` until (before) ``end_day``, and
    whose features reach back to ``first_day``."""

    first_day: date
    end_day: date
    set_by: str
    by_champion: bool = False


def history_reach(
    options: PipelineOptions, last_event_ms: int, registry: ModelRegistry
) -> HistoryReach:
    """The days of a history whose last event is at ``last_event_ms`` that a run with
    ``options`` reads: the candidate's features back from its earliest fold's training
    start, the champion's (re-scored on the latest test window) back from that window's
    start, up to the latest test window's end (no later day is in any window)."""
    latest = _split_from(options, last_event_ms)
    earliest = fold_splits(latest, options.folds)[-1]
    candidate = options.feature_set
    reach = HistoryReach(
        FeaturePlan(candidate).first_day_read(earliest.train_start),
        latest.test_end,
        f"the candidate's {candidate.name} features",
    )
    version = registry.champion_version()
    if version is None:
        return reach
    try:
        champion = feature_set_of(registry.metadata(version))
    except RegistryError:  # a champion this release cannot serve is replaced, not re-scored
        return reach
    champion_day = FeaturePlan(champion).first_day_read(latest.test_start)
    if champion_day < reach.first_day:
        set_by = f"champion v{version}'s {champion.name} features"
        return HistoryReach(champion_day, latest.test_end, set_by, by_champion=True)
    return reach


def _split_from(options: PipelineOptions, last_event_ms: int) -> TimeSplit:
    """The options' split, or the latest one whose labels are complete by the event at
    ``last_event_ms`` (as :func:`latest_split` places it)."""
    if options.train_start is not None:
        return _split_starting(options, options.train_start.date())
    span = options.train_days + options.delay_days + options.test_days
    end = complete_test_end(last_event_ms, options.label_delay_s)
    return _split_starting(options, end - timedelta(days=span))


def _split_starting(options: PipelineOptions, train_start: date) -> TimeSplit:
    return TimeSplit(
        train_start=train_start,
        train_days=options.train_days,
        delay_days=options.delay_days,
        test_days=options.test_days,
    )


def _split(history: pd.DataFrame, options: PipelineOptions, last_event_ms: int | None) -> TimeSplit:
    """The options' split, or the latest one the history holds (``last_event_ms``: the
    last event of a history that ``history`` is the earlier part of)."""
    if options.train_start is None:
        return latest_split(
            history,
            train_days=options.train_days,
            delay_days=options.delay_days,
            test_days=options.test_days,
            label_delay_s=options.label_delay_s,
            last_event_ms=last_event_ms,
        )
    return _split_starting(options, options.train_start.date())


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
    feature_set = options.feature_set.available_for(frozenset(history.columns))
    with clock.stage("features"):
        split = _split(history, options, last_event_ms)
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
                "fold": k,
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
        champion_version, champion, gate = _judge(
            registry, evaluation, data, features, options, read_since
        )
        labels, amounts = _test_labels_and_amounts(history, data)
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
    # the last stage report, so a stop requested here leaves no version behind
    progress("writing the report")
    with clock.stage("report"):
        meta = registry.register(
            fitted.booster,
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
                "params": {k: v for k, v in fitted.params.items() if k != "nthread"},
                "rounds": fitted.rounds,
                "candidates": fitted.candidates,
                "selection": fitted.selection,
                "search_rows": fitted.search_rows,
                "train_rows": data.train_rows,
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
        if options.predictions_out is not None:
            _write_predictions(options.predictions_out, history, evaluation)

        test_window = EvaluatedWindow(
            evaluation,
            labels,
            amounts,
            features.take(data.test),
            features.names,
            history["fraud_scenario"].to_numpy()[data.test]
            if "fraud_scenario" in history
            else None,
        )

        def report(gate: GateDecision, promoted: bool) -> Path:
            return write_report(
                options.report_dir or registry.version_dir(meta.version) / "report",
                metadata=meta,
                window=test_window,
                booster=fitted.booster,
                cost=options.training.cost,
                gate=gate,
                promoted=promoted,
                champion=champion,
            )

        # promotion comes last, so a failed step above never leaves a champion behind it
        promoted = gate.promote and options.promote
        if gate.promote and not options.promote:
            gate = GateDecision(
                True,
                f"{gate.reason}; not promoted: this run only registers (--no-promote); "
                f"`fraud models promote {meta.version}` makes it the champion",
            )
        report_path = report(gate, promoted)
        if promoted:
            try:
                registry.promote(meta.version, expected=champion_version)
            except ChampionMovedError as exc:  # an operator promoted or rolled back meanwhile
                promoted, gate = False, GateDecision(False, str(exc))
                report_path = report(gate, promoted)
            except Exception as exc:  # the report must not say "promoted"
                report(GateDecision(False, f"the promotion failed: {exc}"), False)
                raise
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
