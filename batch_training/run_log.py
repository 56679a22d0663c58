"""The trainer's run log: one JSON line per training run, beside the registry.

A scheduled run that fails says so in the trainer's log, which nobody reads until
something is wrong. The run log keeps every run's outcome where monitoring can read it:
``fraud models runs`` lists it, and ``--check 26h`` exits non-zero when no run has
completed for that long (a health check, or a cron monitor).

Runs take turns under the train lock, so appends never interleave; each line is written
whole with one ``write`` to a file opened for appending. A run the kernel kills (out of
memory, SIGKILL) writes nothing, so each run leaves a marker while it works, and the next
run records a marker it finds as a killed run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, get_args

from feature_store.schema import redact_pans

__all__ = ["COMPLETED", "RUN_LOG_FILE", "RunLog", "RunRecord"]

log = logging.getLogger(__name__)

RUN_LOG_FILE: Final = "runs.jsonl"
IN_PROGRESS_FILE: Final = ".run-in-progress.json"

# unchanged: a scheduled run skipped because its history and champion were as the last
# run left them (batch_training.unchanged); the trainer did its work, so it completed
Outcome = Literal["promoted", "challenger", "unchanged", "failed", "cancelled"]
COMPLETED: Final = frozenset({"promoted", "challenger", "unchanged"})


@dataclass(frozen=True)
class RunRecord:
    started: str  # ISO 8601 with its offset (UTC when written here)
    seconds: float
    outcome: Outcome
    reason: str  # the gate's verdict, or the error's message
    version: int | None = None
    error: str | None = None  # the error's class
    metrics: dict[str, float | None] = field(default_factory=dict)  # None: not defined

    @property
    def started_at(self) -> datetime:
        when = datetime.fromisoformat(self.started)
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    @classmethod
    def from_json(cls, line: str) -> RunRecord:
        """A record from its line; ValueError when the line is not one (fields this
        release does not know, from a newer one, are ignored)."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError(f"an object was expected, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        checks = (
            isinstance(record.started, str),
            _is_number(record.seconds),
            record.outcome in get_args(Outcome),
            isinstance(record.reason, str),
            record.version is None or type(record.version) is int,
            isinstance(record.metrics, dict)
            and all(_is_number(v) or v is None for v in record.metrics.values()),
        )
        if not all(checks):
            raise ValueError(f"a field has the wrong type: {data}")
        _ = record.started_at  # a time it cannot read raises ValueError now, not in --check
        return record


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RunLog:
    def __init__(self, registry_root: Path) -> None:
        self.path = registry_root / RUN_LOG_FILE
        self._marker = registry_root / IN_PROGRESS_FILE

    def begin(self, started: str) -> RunRecord | None:
        """Mark a run as in progress (under the train lock); first record the run whose
        marker is still there, which ended without a record: it is returned."""
        killed = self._record_killed_run()
        self._marker.parent.mkdir(parents=True, exist_ok=True)
        staged = self._marker.with_suffix(".tmp")
        staged.write_text(json.dumps({"started": started, "pid": os.getpid()}))
        os.replace(staged, self._marker)
        return killed

    def end(self) -> None:
        """The run is recorded (or was never begun)."""
        self._marker.unlink(missing_ok=True)

    def _record_killed_run(self) -> RunRecord | None:
        try:
            marker = json.loads(self._marker.read_text())
            started, pid = str(marker["started"]), int(marker["pid"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # torn by the kill itself
            started, pid = datetime.now(UTC).isoformat(timespec="seconds"), None
            log.warning("%s is unreadable (%s); recorded as a killed run", self._marker, exc)
        record = RunRecord(
            started=started,
            seconds=0.0,  # unknown: the run left no end
            outcome="failed",
            reason=(
                f"the run started at {started}"
                + (f" (pid {pid})" if pid is not None else "")
                + " ended without a record: killed by the kernel (out of memory?) or by "
                "SIGKILL, or its machine stopped; its duration is unknown"
            ),
            error="Killed",
        )
        self.append(record)
        self._marker.unlink(missing_ok=True)
        return record

    def append(self, record: RunRecord) -> None:
        # NaN (an undefined metric) is not JSON that monitors read: null instead
        metrics = {k: v if v is not None and math.isfinite(v) else None
                   for k, v in record.metrics.items()}  # fmt: skip
        # an error's message may quote an input value: a card number must not be kept
        values = asdict(record) | {"metrics": metrics, "reason": redact_pans(record.reason)}
        line = json.dumps(values, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            # after a line a crash tore, start a new one: else this record is lost with it
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line
            data = line.encode()
            if os.write(fd, data) != len(data):
                raise OSError(f"short write to {self.path}")
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[RunRecord]:
        """Every run, oldest first; a line that is not a record (torn by a crash, edited)
        is skipped with a warning."""
        if not self.path.is_file():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            try:
                records.append(RunRecord.from_json(line))
            except (ValueError, TypeError) as exc:
                log.warning("%s line %d is unreadable (%s); skipped", self.path, number, exc)
        return records

    def last_completed(self) -> RunRecord | None:
        completed = [r for r in self.records() if r.outcome in COMPLETED]
        return completed[-1] if completed else None
