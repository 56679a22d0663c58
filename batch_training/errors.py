"""Errors of batch training and the registry."""

from __future__ import annotations

__all__ = [
    "ModelIntegrityError",
    "NoChampionError",
    "RegistryError",
    "TrainingConfigError",
    "TrainingDataError",
]


class RegistryError(Exception):
    """Root of registry errors."""


class ModelIntegrityError(RegistryError):
    """A model file does not match its metadata (checksum, feature set): it is refused."""


class NoChampionError(RegistryError):
    """The registry has no champion yet."""


class TrainingDataError(Exception):
    """The history cannot train a model (too few rows, no fraud in a split ...)."""


class TrainingConfigError(ValueError):
    """A training setting is out of range."""
