"""Errors of the review console, each saying what was wrong and how to fix it."""

from __future__ import annotations

__all__ = [
    "BadInput",
    "CaseNotFound",
    "NotAllowed",
    "ReviewConfigError",
    "ReviewError",
    "UserError",
]


class ReviewError(Exception):
    """Base class of the console's errors."""


class ReviewConfigError(ReviewError):
    """A setting (database URL, bind address) the console cannot use."""


class UserError(ReviewError):
    """An account cannot be created or changed as asked."""


class CaseNotFound(ReviewError):
    """No case with that id."""


class NotAllowed(ReviewError):
    """The user's role or the case's state does not allow the action."""


class BadInput(ReviewError):
    """A form value the console does not take (an unknown verdict, an overlong comment)."""
