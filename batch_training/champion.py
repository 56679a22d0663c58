"""Judging a candidate against the serving champion, re-scored on the candidate's own
test set."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from batch_training.dataset import DataSplit
from batch_training.errors import RegistryError
from batch_training.folds import Evaluation, FoldFeatures
from batch_training.gate import GateDecision, promotion_gate
from batch_training.metrics import CostModel, decision_outcome
from batch_training.model_features import feature_set_of
from batch_training.options import PipelineOptions
from batch_training.registry import ModelRegistry
from feature_store import FeaturePlan
from feature_store.offline import offline_feature_matrix

__all__ = ["judge_candidate", "unless_rolled_back"]

log = logging.getLogger(__name__)


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

    Raises :class:`RegistryError` when the champion cannot be served: its file was
    altered or is gone, or this release no longer computes its features;
    :class:`_NotComparable` when it trained on days of this test window, or its features
    reach back before ``read_since``, the first day read.
    """
    champion = registry.load(version)
    meta = champion.metadata
    champion_set = feature_set_of(meta)
    trained_until = _training_end(meta.training_window)
    test_start = pd.Timestamp(data.split.test_start, tz="UTC")
    if trained_until is not None and trained_until >= test_start:
        raise _NotComparable(
            f"champion v{version} trained on payments until {trained_until:%Y-%m-%d %H:%M}, "
            f"on or after this test window's first day ({data.split.test_start}): its "
            "metrics there would flatter it. The candidate stays a challenger; a run whose "
            "test window starts after that day compares them, or `fraud models promote` "
            "the candidate's version with --force to serve it now"
        )
    needed = FeaturePlan(champion_set).first_day_read(data.split.test_start)
    if read_since is not None and needed < read_since:
        raise _NotComparable(
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
    # as the candidate's: no DMatrix copy (load checked the booster's feature names)
    scores = champion.booster.inplace_predict(test_features)
    outcome = decision_outcome(
        scores,
        *features.labels_and_amounts(data),
        meta.thresholds.review,
        meta.thresholds.decline,
        cost,
    )
    return features.evaluate(scores, data, alert_rate).metrics | {"test_cost": outcome.cost}


class _NotComparable(Exception):
    """The champion cannot be judged on this run's test set: it trained on some of it, or
    its features need days of the history that the run did not read."""


def _training_end(window: dict[str, Any]) -> pd.Timestamp | None:
    """The champion's last training payment, when its metadata records one."""
    try:
        end = pd.Timestamp(window["end"])
    except (KeyError, TypeError, ValueError):  # written by hand or by an older release
        return None
    return end.tz_localize("UTC") if end.tzinfo is None else end


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
        except _NotComparable as exc:
            return version, None, GateDecision(False, str(exc))
        # altered, or its version directory gone (a plain RegistryError): no worker of this
        # release serves it, so it is replaced, as history_reach assumed when it read
        except RegistryError as exc:
            reason = f"the champion cannot be served ({exc}); the candidate replaces it"
            return version, None, GateDecision(True, reason)
    gate = promotion_gate(candidate.metrics, champion, cp_tolerance=options.cp_tolerance)
    return version, champion, gate


def unless_rolled_back(
    gate: GateDecision, registry: ModelRegistry, candidate_sha256: str
) -> GateDecision:
    """``gate``, except that a model an operator rolled back is not promoted again: the
    same data and seed train it again, and a schedule would undo the rollback."""
    if not gate.promote:
        return gate
    try:
        was = registry.rolled_back_models().get(candidate_sha256)
    except RegistryError as exc:  # edited by hand: the promotion refuses it, naming the fix
        log.warning("%s", exc)
        return gate
    if was is None:
        return gate
    return GateDecision(
        False,
        f"it is the same model as {registry.name(was)}, which an operator rolled back; "
        "`fraud models promote` this version with --force to serve it (it ranks above the "
        f"champion: {gate.reason})",
        ranked_above=True,
    )
