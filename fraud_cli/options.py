"""Options several commands share, defined once, and how their values are read."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from feature_store.columns import COLUMN_PRESETS

__all__ = [
    "NonEmptyPath",
    "check_duration",
    "columns_option",
    "parse_duration",
    "positive_seconds",
]


class NonEmptyPath(click.Path):
    """A path option that refuses an empty value: ``Path("")`` is the working directory,
    where `--registry ''` made a registry and `models --registry '' list` listed nothing
    (the settings' variables refuse an empty path too)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"{value!r} is blank; give a path", param, ctx)
        return super().convert(value, param, ctx)


def columns_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--columns``: the column layout of a history a command reads."""
    return click.option(
        "--columns",
        type=click.Choice(COLUMN_PRESETS),
        default="native",
        show_default=True,
        help=help,
    )


# a year and a day: a longer interval or age is a typo
_LONGEST_S = 366 * 86400


def parse_duration(text: str) -> float:
    """'90s', '15m', '24h' or '7d', at least a second; ValueError naming what is wrong."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    examples = "use e.g. 90s, 15m, 24h, 7d"
    try:
        number = float(text[:-1] if text[-1:] in units else text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; {examples}") from None
    if text[-1:] not in units:  # `--every 24` meant a day, and would retrain every 24 s
        raise ValueError(f"{text!r} has no unit; write {text}h, {text}m or {text}s")
    seconds = number * units[text[-1]]
    if math.isnan(seconds):
        raise ValueError(f"{text!r} is not a duration; {examples}")
    if seconds <= 0:
        raise ValueError(f"{text!r} is not longer than zero; {examples}")
    if seconds < 1:
        raise ValueError(f"{text!r} is shorter than a second; {examples}")
    if seconds > _LONGEST_S:
        raise ValueError(f"{text!r} is longer than 366d; {examples}")
    return seconds


def check_duration(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: a bad duration is refused, naming its option, before the command
    does anything (`models runs --check abc` printed the runs first)."""
    if value is not None:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def positive_seconds(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    """A click callback for a number of seconds: finite and above zero (`nan` never
    elapsed, and `-5` elapsed at once)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(
            f"{value} is not a number of seconds above zero; give e.g. 30", ctx=ctx, param=param
        )
    return value
