"""A dependency down for a while is a few log lines with a start, a sum and an end."""

from __future__ import annotations

import logging

import pytest

from stream.outage import Outage


def _outage(now: list[float]) -> Outage:
    log = logging.getLogger("test.outage")
    return Outage(log, what="degraded decisions", lost="decisions degraded", clock=lambda: now[0])


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.outage"]


def test_an_outage_is_logged_when_it_begins_every_so_often_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    outage = _outage(now)
    outage.succeeded()  # nothing to end
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for _ in range(60):  # 15 s of batches of 10, one every 0.25 s
            outage.failed(10, "Redis down")
            now[0] += 0.25
        for _ in range(39):  # then batches that go through: not over yet...
            outage.succeeded()
            now[0] += 0.25
        assert outage.ongoing
        outage.succeeded()  # ...until none failed for 10 s
    assert _lines(caplog) == [
        "degraded decisions: 10 decisions degraded (Redis down); until it recovers, one line "
        "every 10 s",
        "degraded decisions for 10 s: 400 more decisions degraded since the last line (Redis down)",
        "degraded decisions: over; 600 decisions degraded in 60 batches from the first failure "
        "to the last (14.8 s)",
    ]
    assert not outage.ongoing


def test_sporadic_failures_are_one_outage_not_two_lines_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A batch missing its latency budget every third batch, under load: each miss used to
    open and close an outage of its own."""
    now = [0.0]
    outage = _outage(now)
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for batch in range(96):  # 12 s, a batch every 0.125 s, every third one degraded
            if batch % 3 == 0:
                outage.failed(10, "the store missed the 250 ms budget")
            else:
                outage.succeeded()
            now[0] += 0.125
    lines = _lines(caplog)
    assert len(lines) == 2, lines
    assert lines[1].startswith("degraded decisions for 10 s: 270 more decisions degraded")
    assert outage.ongoing
