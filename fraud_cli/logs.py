"""Logging of every `fraud` command: one format, and no card number in any record."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from feature_store.schema import redact_pans

__all__ = ["RepeatFilter", "configure_logging", "report_repeats_left_out"]


# the Kafka clients' loggers: during a broker outage they log each failed connection,
# metadata update and fetch (aiokafka about 80 lines a second; kafka-python, in the
# console and the archiver, about 100 lines per outage); a filter on a logger sees only
# its own records, so each is named
_KAFKA_CLIENT_LOGGERS = (
    "kafka.cluster",
    "kafka.coordinator",
    "kafka.coordinator.consumer",
    "kafka.consumer.fetcher",
    "kafka.consumer.group",
    "kafka.net.compat",
    "kafka.net.connection",
    "kafka.net.manager",
    "kafka.producer.kafka",
    "kafka.producer.sender",
    "aiokafka",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)


def configure_logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python warns whenever one poll takes >100 ms, which a busy 2-core machine does
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    _redact_every_record()
    for name in _KAFKA_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(_KAFKA_REPEATS)


def report_repeats_left_out() -> None:
    """At a worker's stop: how many of the Kafka clients' repeated records were left out
    since each last showed (the count otherwise waits for the next one like it)."""
    _KAFKA_REPEATS.flush()


class RepeatFilter(logging.Filter):
    """One record per message (its format string) every ``window_s``; the next one says
    how many like it were left out."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._window_s, self._clock = window_s, clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # -> (shown at, left out)

    def flush(self) -> None:
        """Log, per message, how many records like it were left out since it last showed,
        and start afresh."""
        now, seen, self._seen = self._clock(), self._seen, {}
        for (name, message), (shown_at, left_out) in seen.items():
            if left_out:  # pre-formatted: each its own message, none held back by the next
                logging.getLogger(name).warning(
                    f"[{left_out} more like {message!r} in the last "
                    f"{now - shown_at:.0f} s not shown]"
                )

    def filter(self, record: logging.LogRecord) -> bool:
        key, now = (record.name, str(record.msg)), self._clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self._window_s:
            self._seen[key] = (seen[0], seen[1] + 1)
            return False
        if len(self._seen) >= 1000:  # messages already formatted (redacted) are each new
            self._seen.clear()
        self._seen[key] = (now, 0)
        if seen is not None and seen[1]:
            note = f" [{seen[1]} more like it in the last {now - seen[0]:.0f} s not shown]"
            record.msg = f"{record.msg}{note}"  # no '%' in it: safe before the arguments
        return True


_KAFKA_REPEATS = RepeatFilter()


def _redact_every_record() -> None:
    """Card numbers are replaced in every record's message and traceback, whichever
    library logs it and whichever handler writes it: at debug level aiokafka logs the raw
    bytes it fetched, payloads included. Records below the loggers' levels are never
    made, so this costs only what is written."""
    base = logging.getLogRecordFactory()
    if getattr(base, "redacts_pans", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
            if (redacted := redact_pans(message)) != message:
                _set_message(record, redacted)
            if record.exc_info and record.exc_info[0] is not None:
                # formatters keep a set exc_text rather than format the exception again
                trace = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
                if (redacted := redact_pans(trace)) != trace:
                    record.exc_text = redacted
            if record.stack_info:
                record.stack_info = redact_pans(record.stack_info)
        except Exception as exc:  # a bad format must not raise at the caller, nor leak
            try:
                _set_message(record, redact_pans(f"{record.msg} [arguments not shown: {exc!r}]"))
            except Exception:  # a message object whose str() fails
                _set_message(record, "[a log record that could not be formatted]")
        return record

    factory.redacts_pans = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def _set_message(record: logging.LogRecord, message: str) -> None:
    """The record's final text. Arguments become an empty tuple, not None: faust's
    formatter (mode) wraps None into (None,) and formats again, garbling any '%'."""
    record.msg, record.args = message, ()
