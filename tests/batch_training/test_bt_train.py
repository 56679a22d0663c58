"""First-generation training: thresholds, and a model that actually separates fraud."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batch_training.errors import TrainingDataError
from batch_training.registry import ModelRegistry
from batch_training.train import TrainingConfig, choose_thresholds, train_and_register
from feature_store import CORE_FEATURE_SET


def test_thresholds_review_top_share_and_decline_at_precision() -> None:
    scores = np.linspace(0.0, 1.0, 1000)
    labels = (scores > 0.95).astype(np.int8)  # the top 49 are fraud
    t = choose_thresholds(scores, labels, alert_rate=0.1, decline_precision=0.9)
    assert t.review == pytest.approx(0.9, abs=0.002)
    # lowest score where top-k precision is still >= 0.9: 49 frauds / 54 flagged
    assert 0.94 < t.decline < 0.95
    assert t.review <= t.decline


def test_trained_model_separates_fraud(trained_registry: ModelRegistry) -> None:
    meta = trained_registry.load_champion().metadata
    assert meta.feature_names == CORE_FEATURE_SET.names
    assert meta.feature_set_fingerprint == CORE_FEATURE_SET.fingerprint
    assert meta.metrics["roc_auc"] > 0.75
    assert meta.training_window["start"] < meta.training_window["end"]


def test_training_needs_labels_of_both_classes(small_history: pd.DataFrame, tmp_path: Path) -> None:
    legit_only = small_history.assign(is_fraud=0)
    with pytest.raises(TrainingDataError, match="single class"):
        train_and_register(
            legit_only,
            feature_set=CORE_FEATURE_SET,
            registry=ModelRegistry(tmp_path),
            config=TrainingConfig(max_rounds=5),
        )
    with pytest.raises(TrainingDataError, match="is_fraud"):
        train_and_register(
            small_history.drop(columns=["is_fraud"]),
            feature_set=CORE_FEATURE_SET,
            registry=ModelRegistry(tmp_path),
            config=TrainingConfig(max_rounds=5),
        )
