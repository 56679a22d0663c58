"""Errors of the feature store: one root, one class per failure a caller handles."""

from __future__ import annotations

from datetime import date
from pathlib import Path

__all__ = [
    "ArchiveBusyError",
    "FeatureStoreError",
    "HistoryColumnsError",
    "HistoryFormatError",
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


class HistoryFormatError(FeatureStoreError):
    """A history file is not Parquet or CSV, or is damaged: it cannot be read at all."""


class ArchiveBusyError(FeatureStoreError):
    """Another process is writing the same payments into the archive (a second backfill)."""


class HistoryTooLargeError(FeatureStoreError):
    """A history holds more rows than the reader was allowed to load into memory."""

    def __init__(
        self,
        path: Path,
        rows: int,
        max_rows: int,
        since: date | None,
        fix: str = "read fewer days, or raise the limit if this machine has the memory",
        until: date | None = None,
    ) -> None:
        self.path, self.rows, self.max_rows = path, rows, max_rows
        self.since, self.until = since, until
        where = f" from {since}" if since is not None else ""
        where += f" before {until}" if until is not None else " on" if since else ""
        super().__init__(
            f"history {str(path)!r} holds {rows:,} rows{where}, more than the limit of "
            f"{max_rows:,} (peak memory grows by about 0.5 GB per million rows): {fix}"
        )

    def with_fix(self, fix: str) -> HistoryTooLargeError:
        """The same refusal, with the fix the caller knows (its flags and settings)."""
        return HistoryTooLargeError(
            self.path, self.rows, self.max_rows, self.since, fix, until=self.until
        )


class OnlineStoreUnavailable(FeatureStoreError):
    """The online store did not answer (down, or slower than the deadline)."""
