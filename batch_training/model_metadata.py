"""What a registered model version is: its XGBoost booster and the metadata recorded with
it (features in order, thresholds, metrics, window, the model file's sha256)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import xgboost as xgb

from batch_training.errors import RegistryError

__all__ = [
    "NEVER_ACT",
    "LoadedModel",
    "ModelMetadata",
    "Thresholds",
    "model_file_bytes",
    "model_sha256",
    "sha256_hex",
]

# a threshold above every score (scores are at most 1.0): "never review" / "never decline"
NEVER_ACT: Final = math.nextafter(1.0, 2.0)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """Scores at or above ``review`` are reviewed; at or above ``decline`` declined."""

    review: float
    decline: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.decline <= NEVER_ACT:
            raise RegistryError(
                f"thresholds review={self.review} decline={self.decline} must satisfy "
                f"0 <= review <= decline <= 1 (or {NEVER_ACT!r}: never)"
            )


@dataclass(frozen=True, kw_only=True)
class ModelMetadata:
    version: int
    created_at: str
    feature_set_name: str
    feature_set_version: int
    feature_set_fingerprint: str
    feature_names: tuple[str, ...]
    thresholds: Thresholds
    metrics: dict[str, float]
    training_window: dict[str, str | int]  # split_delay_days: an int (a str before 2026-12-07)
    model_sha256: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        raw = json.loads(text)
        for key in ("metrics", "training_window", "extra"):
            if not isinstance(raw.get(key, {}), dict):
                raise TypeError(f"{key} is {raw[key]!r}, not an object")
        raw["thresholds"] = Thresholds(**raw["thresholds"])
        raw["feature_names"] = tuple(raw["feature_names"])
        # a flag versions of 2026-12-07 carried, trusted then to say SHA256SUMS was
        # written: deleting both passed for an older version; every version has one now
        raw.pop("checksummed", None)
        return cls(**raw)


@dataclass(frozen=True)
class LoadedModel:
    booster: xgb.Booster
    metadata: ModelMetadata


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_file_bytes(booster: xgb.Booster) -> bytes:
    return bytes(booster.save_raw(raw_format="ubj"))


def model_sha256(booster: xgb.Booster) -> str:
    """The sha256 a version of ``booster`` records (training is deterministic: the same
    data, options and seed give the same model, and the same checksum)."""
    return sha256_hex(model_file_bytes(booster))
