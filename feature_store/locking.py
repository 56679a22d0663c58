"""Exclusive work on shared files: two training runs, two backfills of one archive."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["exclusive", "lock_holder"]


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[bool]:
    """Hold an exclusive, non-blocking lock on ``lock_path``; yield False if it is taken."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(lock_path: Path, what: str) -> str:
    """Who holds ``lock_path``, for a refusal: "<what> (pid N)"."""
    try:
        pid = int(lock_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):  # written a moment later, or by hand
        return what
    return f"{what} (pid {pid})"
