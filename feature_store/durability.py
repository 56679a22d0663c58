"""Flushing what was written to disk before it is relied on (a pointer, an offset commit),
and removing what a writer killed mid-write left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["fsync_path", "remove_abandoned"]


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


def remove_abandoned(paths: Iterable[Path], *, older_than_s: float) -> int:
    """Remove the files and directories among ``paths`` untouched for ``older_than_s``: a
    writer's leftovers once no live writer can still own them (another's, renamed or
    removed meanwhile, is skipped); returns how many."""
    cutoff = time.time() - older_than_s
    removed = 0
    for path in paths:
        with contextlib.suppress(OSError):
            if path.stat().st_mtime >= cutoff:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed
