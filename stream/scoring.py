"""The serving model: the registry's champion, checked against the stream's feature set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from batch_training.errors import ModelIntegrityError
from batch_training.registry import LoadedModel, ModelRegistry
from feature_store import FeatureSet, feature_set_by_name

__all__ = ["ServingModel", "load_serving_model"]


@dataclass(frozen=True)
class ServingModel:
    model: LoadedModel
    feature_set: FeatureSet

    @property
    def version(self) -> int:
        return self.model.metadata.version

    def score_batch(self, features: np.ndarray) -> np.ndarray:
        """Fraud probability per row; one model call for the whole batch."""
        return np.asarray(self.model.booster.inplace_predict(features), dtype=np.float64)


def load_serving_model(registry: ModelRegistry) -> ServingModel:
    """Load the champion and refuse it unless its features are exactly ours."""
    loaded = registry.load_champion()
    meta = loaded.metadata
    try:
        feature_set = feature_set_by_name(meta.feature_set_name).select(meta.feature_names)
    except ValueError as exc:
        raise ModelIntegrityError(f"model version {meta.version}: {exc}") from exc
    if (
        feature_set.fingerprint != meta.feature_set_fingerprint
        or feature_set.names != meta.feature_names
    ):
        raise ModelIntegrityError(
            f"model version {meta.version} was trained on feature set {meta.feature_set_name!r} "
            f"with fingerprint {meta.feature_set_fingerprint[:12]}…, but this worker computes "
            f"{feature_set.fingerprint[:12]}…; retrain with this release's features"
        )
    return ServingModel(model=loaded, feature_set=feature_set)
