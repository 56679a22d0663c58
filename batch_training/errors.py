"""Errors of batch training and the registry."""

from __future__ import annotations

__all__ = [
    "BatchTrainingError",
    "ChampionMovedError",
    "ModelIntegrityError",
    "NoChampionError",
    "RegistryError",
    "TrainingConfigError",
    "TrainingDataError",
]


class BatchTrainingError(Exception):
    """Root of batch training's errors: the CLI prints these as one-line messages."""


class RegistryError(BatchTrainingError):
    """Root of registry errors."""


class ModelIntegrityError(RegistryError):
    """A model file does not match its metadata (checksum, feature set): it is refused."""


class ChampionMovedError(RegistryError):
    """The champion changed between a gate's judgement and the promotion it allowed."""


class NoChampionError(RegistryError):
    """The registry has no champion yet."""


class TrainingDataError(BatchTrainingError):
    """The history cannot train a model (too few rows, no fraud in a split ...)."""


class TrainingConfigError(BatchTrainingError, ValueError):
    """A training setting (split, schedule, trainer parameter) is out of range."""
