"""The features a registered model was trained on, as this release computes them.

A model is only scored on features whose definitions are exactly those it was trained on:
the stream refuses to serve it otherwise, and the promotion gate cannot compare with it.
"""

from __future__ import annotations

from batch_training.errors import ModelIntegrityError
from batch_training.model_metadata import ModelMetadata
from feature_store import FeatureSet, feature_set_by_name

__all__ = ["feature_set_of"]


def feature_set_of(meta: ModelMetadata) -> FeatureSet:
    """This release's definitions of ``meta``'s features, in the model's order.

    Raises :class:`ModelIntegrityError` when this release no longer has them, or defines
    them differently (another fingerprint).
    """
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
            f"with fingerprint {meta.feature_set_fingerprint[:12]}…, but this release computes "
            f"{feature_set.fingerprint[:12]}…; retrain with this release's features"
        )
    return feature_set
