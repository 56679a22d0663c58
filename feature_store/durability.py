"""Flushing what was written to disk before it is relied on (a pointer, an offset commit)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["fsync_path"]


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk. Best effort: some network and FUSE
    file systems refuse a directory's fsync (PostgreSQL ignores that too), and a change
    already made must not then be reported as failed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
