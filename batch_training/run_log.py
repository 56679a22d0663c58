"""The trainer's run log: one JSON line per training run, beside the registry.

A scheduled run that fails says so in the trainer's log, which nobody reads until
something is wrong. The run log keeps every run's outcome where monitoring can read it:
``fraud models runs`` lists it, and ``--check 26h`` exits non-zero when no run has
completed for that long (a health check, or a cron monitor).

Runs take turns under the train lock, so appends never interleave; each line is written
whole with one ``write`` to a file opened for appending.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

__all__ = ["COMPLETED", "RUN_LOG_FILE", "RunLog", "RunRecord"]

log = logging.getLogger(__name__)

RUN_LOG_FILE: Final = "runs.jsonl"

Outcome = Literal["promoted", "challenger", "failed", "cancelled"]
COMPLETED: Final = frozenset({"promoted", "challenger"})


@dataclass(frozen=True)
class RunRecord:
    started: str  # ISO 8601, UTC
    seconds: float
    outcome: Outcome
    reason: str  # the gate's verdict, or the error's message
    version: int | None = None
    error: str | None = None  # the error's class
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def started_at(self) -> datetime:
        return datetime.fromisoformat(self.started)


class RunLog:
    def __init__(self, registry_root: Path) -> None:
        self.path = registry_root / RUN_LOG_FILE

    def append(self, record: RunRecord) -> None:
        line = (json.dumps(asdict(record), sort_keys=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[RunRecord]:
        """Every run, oldest first; a line a crash tore is skipped with a warning."""
        if not self.path.is_file():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            try:
                fields: dict[str, Any] = json.loads(line)
                records.append(RunRecord(**fields))
            except (ValueError, TypeError) as exc:
                log.warning("%s line %d is unreadable (%s); skipped", self.path, number, exc)
        return records

    def last_completed(self) -> RunRecord | None:
        completed = [r for r in self.records() if r.outcome in COMPLETED]
        return completed[-1] if completed else None
