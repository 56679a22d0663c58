"""Errors of the feature store: one root, one class per failure a caller handles."""

from __future__ import annotations

__all__ = [
    "FeatureStoreError",
    "HistoryColumnsError",
    "HistoryTooLargeError",
    "InvalidEvent",
    "OnlineStoreUnavailable",
]


class FeatureStoreError(Exception):
    """Root of every error raised by ``feature_store``."""


class InvalidEvent(FeatureStoreError):
    """An event breaks the transaction contract; ``reason`` is a stable code for the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class HistoryColumnsError(FeatureStoreError):
    """A history file lacks a column the feature set needs."""


class HistoryTooLargeError(FeatureStoreError):
    """A history holds more rows than the reader was allowed to load into memory."""


class OnlineStoreUnavailable(FeatureStoreError):
    """The online store did not answer (down, or slower than the deadline)."""
