"""What commands write: progress lines on stderr, and output to a stdout whose reader may
have left."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import click

__all__ = ["progress_line", "reader_may_leave"]


def progress_line(message: str) -> None:
    """A line of progress on stderr; in a log (not a terminal) led by its UTC time."""
    when = "" if sys.stderr.isatty() else f"{datetime.now(UTC).isoformat(timespec='seconds')} "
    click.echo(f"{when}{message}", err=True)


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """A reader that stops reading (`runs --check 26h | head -1`, a scheduler's log
    reader gone) ends the output, not the command: the exit code stays the command's
    (click's own ending exits 1) and what follows is not a failure."""
    try:
        yield
    except BrokenPipeError:
        # what is still buffered for the closed pipe goes nowhere, not to an error at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
