"""Judging a candidate against the serving champion, re-scored on the candidate's own
test set."""

from __future__ import annotations

from datetime import date

import numpy as np
import xgboost as xgb

from batch_training.dataset import DataSplit
from batch_training.errors import ModelIntegrityError
from batch_training.folds import Evaluation, FoldFeatures
from batch_training.gate import GateDecision, promotion_gate
from batch_training.metrics import CostModel, decision_outcome
from batch_training.model_features import feature_set_of
from batch_training.options import PipelineOptions
from batch_training.registry import ModelRegistry
from feature_store import FeaturePlan
from feature_store.offline import offline_feature_matrix

__all__ = ["judge_candidate"]


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
        *features.labels_and_amounts(data),
        meta.thresholds.review,
        meta.thresholds.decline,
        cost,
    )
    return features.evaluate(scores, data, alert_rate).metrics | {"test_cost": outcome.cost}


class _BeyondTheRead(Exception):
    """The champion's features need days of the history that the run did not read."""


def judge_candidate(
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
