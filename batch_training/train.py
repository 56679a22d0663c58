"""First-generation training: time-ordered split, XGBoost, thresholds, registration.

The history is split by time: the earliest ``1 - validation_fraction`` trains, the rest
drives early stopping, the metrics and the thresholds. (The deep protocol with a label
delay and prequential folds is the batch-training issue's work.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score, roc_auc_score

from batch_training.errors import TrainingDataError
from batch_training.registry import ModelMetadata, ModelRegistry, Thresholds
from feature_store import FeatureSet, canonical_order, compute_offline_features

__all__ = ["TrainingConfig", "TrainingResult", "choose_thresholds", "train_and_register"]


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    seed: int = 7
    validation_fraction: float = 0.25
    max_rounds: int = 400
    early_stopping_rounds: int = 30
    max_depth: int = 6
    learning_rate: float = 0.1
    review_alert_rate: float = 0.01  # share of traffic analysts can review
    decline_precision: float = 0.9  # decline only where almost every flag is fraud
    nthread: int = 2


@dataclass(frozen=True)
class TrainingResult:
    metadata: ModelMetadata
    train_rows: int
    validation_rows: int
    seconds: float
    promoted: bool


def choose_thresholds(
    scores: np.ndarray, labels: np.ndarray, *, alert_rate: float, decline_precision: float
) -> Thresholds:
    """Review the top ``alert_rate`` of scores; decline where precision reaches the target."""
    review = float(np.quantile(scores, 1.0 - alert_rate))
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    precision = np.cumsum(sorted_labels) / np.arange(1, len(scores) + 1)
    # lowest score whose top-k precision still meets the target (k >= 5 to avoid noise)
    ok = np.nonzero((precision >= decline_precision) & (np.arange(len(scores)) >= 4))[0]
    decline = float(sorted_scores[ok[-1]]) if len(ok) else 0.99
    decline = max(decline, review)
    return Thresholds(review=min(review, decline), decline=decline)


def train_and_register(
    history: pd.DataFrame,
    *,
    feature_set: FeatureSet,
    registry: ModelRegistry,
    config: TrainingConfig,
    promote: bool = True,
) -> TrainingResult:
    started = time.perf_counter()
    if "is_fraud" not in history.columns:
        raise TrainingDataError("history has no is_fraud column: labels are needed to train")
    history = history.iloc[canonical_order(history)]
    # a feature whose input field this history lacks is left out, not faked
    feature_set = feature_set.available_for(frozenset(history.columns))
    features = compute_offline_features(feature_set, history)
    labels = history["is_fraud"].to_numpy(dtype=np.int8)
    split = int(len(history) * (1.0 - config.validation_fraction))
    for name, part in (("training", labels[:split]), ("validation", labels[split:])):
        if part.sum() == 0 or part.sum() == len(part):
            raise TrainingDataError(
                f"the {name} part of the history ({len(part)} rows) has a single class; "
                "simulate more days or cards (fraud_rate is too low for this size)"
            )
    names = list(feature_set.names)
    train = xgb.DMatrix(features.iloc[:split], label=labels[:split], feature_names=names)
    valid = xgb.DMatrix(features.iloc[split:], label=labels[split:], feature_names=names)
    params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": config.max_depth,
        "eta": config.learning_rate,
        "seed": config.seed,
        "nthread": config.nthread,
    }
    booster = xgb.train(
        params,
        train,
        num_boost_round=config.max_rounds,
        evals=[(valid, "validation")],
        early_stopping_rounds=config.early_stopping_rounds,
        verbose_eval=False,
    )
    booster = booster[: booster.best_iteration + 1]
    scores = booster.predict(valid)
    valid_labels = labels[split:]
    thresholds = choose_thresholds(
        scores,
        valid_labels,
        alert_rate=config.review_alert_rate,
        decline_precision=config.decline_precision,
    )
    times = history["event_time"]
    metadata = registry.register(
        booster,
        created_at=datetime.now(UTC).isoformat(),
        feature_set_name=feature_set.name,
        feature_set_version=feature_set.version,
        feature_set_fingerprint=feature_set.fingerprint,
        feature_names=tuple(names),
        thresholds=thresholds,
        metrics={
            "roc_auc": float(roc_auc_score(valid_labels, scores)),
            "average_precision": float(average_precision_score(valid_labels, scores)),
            "best_iteration": float(booster.num_boosted_rounds()),
        },
        training_window={
            "start": times.iloc[0].isoformat(),
            "end": times.iloc[split - 1].isoformat(),
            "validation_end": times.iloc[-1].isoformat(),
        },
    )
    if promote:
        registry.promote(metadata.version)
    return TrainingResult(
        metadata=metadata,
        train_rows=split,
        validation_rows=len(history) - split,
        seconds=time.perf_counter() - started,
        promoted=promote,
    )
