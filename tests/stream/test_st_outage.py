"""A dependency down for a while is a few log lines with a start, a sum and an end."""

from __future__ import annotations

import logging

import pytest

from stream.outage import Outage


def test_an_outage_is_logged_when_it_begins_every_so_often_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = logging.getLogger("test.outage")
    outage = Outage(log, what="degraded decisions", lost="decisions degraded", clock=lambda: now[0])
    outage.succeeded()  # nothing to end
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        for _ in range(60):  # 15 s of batches of 10, one every 0.25 s
            outage.failed(10, "Redis down")
            now[0] += 0.25
        assert outage.ongoing
        outage.succeeded()
        outage.succeeded()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "degraded decisions: 10 decisions degraded (Redis down); until it recovers, one line "
        "every 10 s",
        "degraded decisions for 10 s: 400 more decisions degraded since the last line (Redis down)",
        "degraded decisions: over after 15.0 s; 600 decisions degraded in 60 batches",
    ]
    assert not outage.ongoing
