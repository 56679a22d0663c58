"""Output paths checked before the work that writes them, not after it."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import click

__all__ = [
    "parquet_file_path",
    "refuse_inside",
    "refuse_other_format",
    "refuse_unusable_directory",
    "refuse_unusable_parquet_file",
    "refuse_unwritable_parent",
]


def _why_not_writable(directory: Path) -> str | None:
    """Why a file cannot be made in ``directory``, or None when it can: tried, not asked
    of ``os.access``, which says yes to root in `/proc` (a full disk still takes an empty
    file: that is told when the write fails)."""
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".fraud-write-check-"):
            return None
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"not writable by uid {os.getuid()}: give it write permission"
        if exc.errno == errno.EROFS:
            return "a read-only file system"
        # /proc and the like: ENOENT for a directory that exists
        return f"no file can be made there: {exc.strerror or type(exc).__name__}"


def refuse_unwritable_parent(path: Path, option: str) -> None:
    """``path`` will be written (missing parents made): its nearest existing ancestor must
    be a directory this process can write in."""
    parent = path.absolute()
    while not parent.exists() and parent != parent.parent:
        # a link that points nowhere: writing through it, or making it a directory, fails
        # at the end of the work
        if parent.is_symlink():
            which = "it" if parent == path.absolute() else str(parent)
            raise click.UsageError(
                f"{option} {path}: {which} is a symbolic link to {os.readlink(parent)}, which "
                "does not exist; create its target or choose another"
            )
        parent = parent.parent
    if parent == path.absolute():  # it exists: a file to replace, written in its parent
        parent = parent.parent
    why = "not a directory" if not parent.is_dir() else _why_not_writable(parent)
    if why is not None:
        raise click.UsageError(f"{option} {path}: cannot write in {parent} ({why}); choose another")


def refuse_unusable_directory(path: Path, option: str) -> None:
    """``path`` is a directory to write in, made if missing."""
    if path.exists() and not path.is_dir():
        raise click.UsageError(f"{option} {path} is a file, not a directory; choose another")
    if path.is_dir():
        if (why := _why_not_writable(path)) is not None:
            raise click.UsageError(f"{option} {path}: cannot write in it ({why}); choose another")
        return
    refuse_unwritable_parent(path, option)


# names that promise another format than the Parquet these commands write
_OTHER_FORMATS = frozenset(
    {".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".xlsx", ".xls", ".feather",
     ".arrow", ".orc", ".avro", ".gz", ".zip", ".bz2", ".xz", ".zst"}
)  # fmt: skip


def refuse_unusable_parquet_file(path: Path, option: str, *, example: str, reads: Path) -> None:
    """``path`` is a Parquet file to write (missing parents made), from the history at
    ``reads``: not a directory, not named as another format (`p.csv` held Parquet), and
    not the history itself or a file in it (the history was replaced by the output)."""
    if path.is_dir():
        raise click.UsageError(f"{option} {path} is a directory; give a Parquet file's path")
    refuse_unwritable_parent(path, option)
    refuse_other_format(path, option, example=example)
    refuse_inside(path, option, {"the history": reads}, reads="this command reads")


def refuse_other_format(path: Path, option: str, *, example: str) -> None:
    """``path`` will hold Parquet: not named as another format (`p.csv` held Parquet, and
    its reader then advised saving the file as UTF-8 text)."""
    if any(suffix.lower() in _OTHER_FORMATS for suffix in path.suffixes):
        stem = path.name.split(".")[0] or example
        raise click.UsageError(
            f"{option} {path}: it is written as Parquet; name the file {stem}.parquet"
        )


def refuse_inside(
    path: Path, option: str, places: Mapping[str, Path], *, reads: str = "this run uses"
) -> None:
    """``path`` will be written: not at or inside any of ``places`` (by what each is),
    whose files it would replace (a registry's model file held the predictions)."""
    target = path.absolute().resolve()
    for what, place in places.items():
        kept = place.absolute().resolve()
        if target == kept or kept in target.parents:
            where = what if target == kept else f"inside {what}"
            raise click.UsageError(
                f"{option} {path} is {where} {place} {reads}: writing it would replace "
                f"what {what} holds; choose another path"
            )


def parquet_file_path(
    example: str,
) -> Callable[[click.Context, click.Parameter, str | None], Path | None]:
    """A click callback for a Parquet file to write: a value ending in a separator names a
    directory, which ``Path`` would forget (`dir/` wrote a file named `dir`)."""

    def checked(ctx: click.Context, param: click.Parameter, value: str | None) -> Path | None:
        if value is None:
            return None
        if value.endswith(("/", os.sep)):
            raise click.BadParameter(
                f"{value} ends in a separator, so it names a directory; give a file's path "
                f"(e.g. {value}{example}.parquet)",
                ctx=ctx,
                param=param,
            )
        return Path(value)

    return checked
