"""Output paths checked before the work that writes them, not after it."""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = [
    "file_path",
    "refuse_unusable_directory",
    "refuse_unusable_file",
    "refuse_unwritable_parent",
]


def refuse_unwritable_parent(path: Path, option: str) -> None:
    """``path`` will be written (missing parents made): its nearest existing ancestor must
    be a directory this process can write in."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise click.UsageError(
            f"{option} {path}: cannot write in {parent} (not a directory, or not writable); "
            f"choose another {option}"
        )


def refuse_unusable_directory(path: Path, option: str) -> None:
    """``path`` is a directory to write in, made if missing."""
    if path.exists() and not path.is_dir():
        raise click.UsageError(f"{option} {path} is a file, not a directory; choose another")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise click.UsageError(
                f"{option} {path} is not writable by this user (uid {os.getuid()}); "
                "give it write permission, or choose another"
            )
        return
    refuse_unwritable_parent(path, option)


def refuse_unusable_file(path: Path, option: str) -> None:
    """``path`` is a file to write (missing parents made)."""
    if path.is_dir():
        raise click.UsageError(f"{option} {path} is a directory; give a Parquet file's path")
    refuse_unwritable_parent(path, option)


def file_path(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
    """A click callback for a file to write: a value ending in a separator names a
    directory, which ``Path`` would forget (`dir/` wrote a file named `dir`)."""
    if value is None:
        return None
    if value.endswith(("/", os.sep)):
        raise click.BadParameter(
            f"{value} ends in a separator, so it names a directory; give a file's path "
            f"(e.g. {value}predictions.parquet)",
            ctx=ctx,
            param=param,
        )
    return Path(value)
