"""Errors of the stream worker whose messages say what to fix."""

from __future__ import annotations

__all__ = ["BrokerUnavailableError", "StreamError", "StreamStartError"]


class StreamError(Exception):
    """The worker cannot do what it was asked; the message names the cause and the fix."""


class StreamStartError(StreamError):
    """A setting names something the worker cannot use, so it does not start."""


class BrokerUnavailableError(StreamError):
    """No Kafka broker answered at the configured address."""
