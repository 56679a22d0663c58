"""Errors of batch training and the registry."""

from __future__ import annotations

__all__ = [
    "BatchTrainingError",
    "ChampionMovedError",
    "ModelIntegrityError",
    "ModelRolledBackError",
    "NoChampionError",
    "OutputWriteError",
    "PromotionFailedError",
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


class ModelRolledBackError(RegistryError):
    """A run's candidate is a model an operator rolled back while it was judged."""


class PromotionFailedError(RegistryError):
    """A candidate was registered, and making it the champion then failed."""

    def __init__(self, version: int, cause: BaseException) -> None:
        super().__init__(
            f"version {version} was registered, but its promotion failed "
            f"({type(cause).__name__}: {cause}); it stays a challenger: fix the cause, then "
            f"`fraud models promote {version}`"
        )
        self.version = version


class NoChampionError(RegistryError):
    """The registry has no champion yet."""


class TrainingDataError(BatchTrainingError):
    """The history cannot train a model (too few rows, no fraud in a split ...)."""


class TrainingConfigError(BatchTrainingError, ValueError):
    """A training setting (split, schedule, trainer parameter) is out of range."""


class OutputWriteError(BatchTrainingError):
    """A run's report or predictions could not be written (a full disk, say); nothing was
    registered."""

    def __init__(self, what: str, path: object, cause: OSError) -> None:
        super().__init__(
            f"cannot write {what} in {path}: {cause.strerror or cause}; free space on that "
            "file system or make it writable, then train again (nothing was registered)"
        )
