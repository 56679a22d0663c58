"""No card number reaches a log line, whichever library logs it and at whichever level."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from fraud_cli.logs import RepeatFilter, configure_logging
from fraud_cli.main import cli

PAN = "4111111111111111"


def test_card_numbers_are_redacted_in_every_record_and_traceback() -> None:
    configure_logging(logging.WARNING)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    library = logging.getLogger("aiokafka.conn.for_this_test")  # as aiokafka logs fetches
    library.addHandler(handler)
    library.setLevel(logging.DEBUG)
    try:
        library.debug("<- FetchResponse message_set=%r", f'{{"card_id":"{PAN}"}}'.encode())
        try:
            raise ValueError(f"bad payload card 4111 1111 1111 1111 in {PAN}")
        except ValueError:
            library.exception("decode failed")
        library.debug("order %s of merchant %s", "4111111111111112", "m-1")  # not Luhn-valid
    finally:
        library.removeHandler(handler)
    text = out.getvalue()
    assert PAN not in text
    assert "4111 1111 1111 1111" not in text
    # the fetch, the exception's two numbers, and the literal in the traceback's source line
    assert text.count("[PAN-REDACTED]") == 4
    assert "4111111111111112" in text  # other digit runs stay readable
    assert "Traceback" in text


def test_a_record_that_cannot_be_formatted_neither_raises_nor_leaks() -> None:
    """Formatting happens when the record is made, inside the caller's logging call (a
    kafka-python sender thread, a faust agent): a wrong format must not raise there."""
    configure_logging(logging.WARNING)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    library = logging.getLogger("kafka.for_this_test")
    library.addHandler(handler)
    try:
        library.warning("%s and %s", PAN)  # one argument short
        library.warning("stack of %s", PAN, stack_info=True)
    finally:
        library.removeHandler(handler)
    text = out.getvalue()
    assert "arguments not shown" in text
    assert PAN not in text
    assert "Stack (most recent call last)" in text


def test_faust_formatter_shows_a_redacted_record_as_written() -> None:
    """The faust worker's formatter (mode's) formats a record's args again: a rewritten
    record must not be garbled by it ('%' in the text, or no args at all)."""
    from mode.utils.logging import ExtensionFormatter  # the one that formats args again

    configure_logging(logging.WARNING)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(ExtensionFormatter(out, fmt="%(message)s"))
    library = logging.getLogger("faust.for_this_test")
    library.addHandler(handler)
    try:
        library.warning("100%% of %s, then %r", f"card {PAN}", 7)
        library.warning("waiting for tasks %r", [1, 2])
    finally:
        library.removeHandler(handler)
    assert out.getvalue().splitlines() == [
        "100% of card [PAN-REDACTED], then 7",
        "waiting for tasks [1, 2]",
    ]


def test_a_kafka_client_repeating_itself_is_logged_once_every_ten_seconds() -> None:
    """A 12 s broker outage wrote about 1,000 lines of aiokafka's connection errors."""
    configure_logging(logging.WARNING)
    configure_logging(logging.WARNING)  # once per logger, however often it is called
    client = logging.getLogger("aiokafka")
    assert sum(isinstance(f, RepeatFilter) for f in client.filters) == 1
    now = [0.0]
    logger = logging.getLogger("test.repeats")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    logger.addFilter(repeats := RepeatFilter(window_s=10.0, clock=lambda: now[0]))
    try:
        for second in range(25):  # two nodes down, each retried every half second
            for half in (0.0, 0.5):
                now[0] = second + half
                for node in (1, 2):
                    logger.error("Unable connect to node with id %s: %s", node, "refused")
        logger.error("Failed fetch messages from %s", 1)
        now[0] = 27.0
        repeats.flush()  # at the worker's stop: the last window's count is not lost
        logger.error("Failed fetch messages from %s", 1)  # afresh: shown
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(repeats)
    lines = out.getvalue().splitlines()
    # one line of that message (its format string) every 10 s, each after the first
    # saying how many it stands for; another message is not held back by it
    shown = "Unable connect to node with id 1: refused"
    assert lines == [
        shown,
        f"{shown} [39 more like it in the last 10 s not shown]",
        f"{shown} [39 more like it in the last 10 s not shown]",
        "Failed fetch messages from 1",
        "[19 more like 'Unable connect to node with id %s: %s' in the last 7 s not shown]",
        "Failed fetch messages from 1",
    ]


def test_every_command_ends_by_saying_what_the_kafka_clients_repeated(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The console and the archiver (kafka-python) too: about 100 lines per outage."""
    configure_logging(logging.WARNING)
    client = logging.getLogger("kafka.cluster")
    message = f"No node available for metadata refresh ({tmp_path.name})"
    for _ in range(3):
        client.warning(message)
    CliRunner().invoke(cli, ["models", "--registry", str(tmp_path / "none"), "list"])
    told = [r.getMessage() for r in caplog.records if r.name == "kafka.cluster"]
    assert told[0] == message
    assert re.fullmatch(
        rf"\[2 more like {re.escape(repr(message))} in the last \d s not shown\]", told[1]
    )
    assert len(told) == 2
