"""Options several commands share, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from feature_store.columns import COLUMN_PRESETS

__all__ = ["columns_option"]


def columns_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--columns``: the column layout of a history a command reads."""
    return click.option(
        "--columns",
        type=click.Choice(COLUMN_PRESETS),
        default="native",
        show_default=True,
        help=help,
    )
