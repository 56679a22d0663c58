"""Paced producer: simulated traffic to a Kafka topic at a steady rate.

About event time: the events keep the time of the *simulated* clock (``events(start=...)``
advances at ``expected_tx_per_day`` transactions per simulated day), not the wall clock. The
simulated population is small, so squeezing its traffic onto wall-clock time at hundreds of
events per second would give every card an absurd velocity and wreck the features. Start the
simulated clock early enough that it does not overtake the wall clock during the run (the
stream rejects events more than a few minutes in the future): see :func:`replay_start`.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import numpy as np

from feature_store.schema import TransactionCodec
from simulator.generator import SimulatedEvent
from simulator.invalid import INVALID_KINDS, invalid_payload
from simulator.profiles import HOURLY_WEIGHTS

__all__ = ["LiveStats", "MessageProducer", "produce_live", "replay_start"]

_TICK_S: Final = 0.002  # sends go out in bursts about this far apart
_MAX_IDLE_S: Final = 0.05  # longest sleep, so a stop request is seen quickly at low rates


class MessageProducer(Protocol):
    """The part of ``kafka.KafkaProducer`` this module uses."""

    def send(self, topic: str, *, key: bytes | None = ..., value: bytes | None = ...) -> Any: ...

    def flush(self) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class LiveStats:
    """``sent`` counts every message, ``invalid_sent`` the malformed ones among them."""

    sent: int
    invalid_sent: int
    seconds: float


def _daily_curve_lead() -> float:
    """How far (in days) the clock can run ahead of the events' even spread over a day."""
    weights = np.asarray(HOURLY_WEIGHTS, dtype=np.float64)
    events_by = np.concatenate([[0.0], np.cumsum(weights / weights.sum())])
    lead = np.arange(25) / 24 - events_by  # at each hour: time passed minus events passed
    return float(lead.max() - lead.min())


_DAILY_CURVE_LEAD: Final = _daily_curve_lead()


def replay_start(*, now: datetime, rate: float, duration_s: float, tx_per_day: float) -> datetime:
    """A simulated start so that ``rate * duration_s`` events end before ``now`` (by up
    to about a third of a day, for the daily curve's quiet hours).

    Pass ``TrafficGenerator.expected_tx_per_day`` as ``tx_per_day``.
    """
    if tx_per_day <= 0:
        raise ValueError(f"tx_per_day={tx_per_day!r}; it must be > 0")
    events = rate * duration_s
    # A stretch of quiet hours holds fewer events than its share of the day: N events can
    # span up to the daily curve's lead (0.30 day) more than N / tx_per_day, and the daily
    # counts are Poisson. Without this margin 5-11 % of a 5,000-event run at the default
    # size came up to 77 minutes ahead of the wall clock and were dead-lettered.
    margin_days = _DAILY_CURVE_LEAD + 4.0 * math.sqrt(events) / tx_per_day
    return now.astimezone(UTC) - timedelta(days=events / tx_per_day + margin_days)


def produce_live(
    *,
    producer: MessageProducer,
    topic: str,
    events: Iterator[SimulatedEvent],
    rate: float,
    duration_s: float,
    invalid_rate: float = 0.0,
    rng_seed: int = 0,
    on_sent: Callable[[SimulatedEvent | None, bytes], None] | None = None,
    stop: threading.Event | None = None,
) -> LiveStats:
    """Send ``events`` as JSON keyed by card id, ``rate`` per second for ``duration_s``.

    Pacing follows a monotonic-clock schedule (event ``i`` is due at ``i / rate``): each tick
    sends everything due, so a slow send is caught up rather than accumulated as drift. A
    share ``invalid_rate`` of events is replaced by malformed ones, rotating through
    :data:`~simulator.invalid.INVALID_KINDS`; ``on_sent`` receives ``None`` for those. Stops
    early when ``stop`` is set or ``events`` runs out, and flushes the producer at the end.
    """
    if rate <= 0:
        raise ValueError(f"rate={rate!r} events/s; it must be > 0")
    if not 0.0 <= invalid_rate <= 1.0:
        raise ValueError(f"invalid_rate={invalid_rate!r}; it is a share, use a value in [0, 1]")
    codec = TransactionCodec()
    rng = np.random.default_rng(rng_seed)
    kinds = itertools.cycle(INVALID_KINDS)
    total = int(rate * duration_s)
    sent = invalid = 0
    began = time.monotonic()
    exhausted = False
    while sent < total and not exhausted and not (stop is not None and stop.is_set()):
        elapsed = time.monotonic() - began
        if elapsed >= duration_s:
            break  # a producer too slow for the rate does not stretch the run
        due = min(total, int(elapsed * rate) + 1)
        while sent < due:
            event = next(events, None)
            if event is None:
                exhausted = True
                break
            tx = event.transaction
            key = tx.card_id.encode()
            if invalid_rate > 0.0 and rng.random() < invalid_rate:
                raw = invalid_payload(next(kinds), tx, now=datetime.now(UTC))
                producer.send(topic, key=key, value=raw)
                invalid += 1
                if on_sent is not None:
                    on_sent(None, raw)
            else:
                raw = codec.encode(tx)
                producer.send(topic, key=key, value=raw)
                if on_sent is not None:
                    on_sent(event, raw)
            sent += 1
        next_due_s = sent / rate
        wait = next_due_s - (time.monotonic() - began)
        if wait > 0:
            time.sleep(min(max(wait, _TICK_S), _MAX_IDLE_S))
    producer.flush()
    return LiveStats(sent=sent, invalid_sent=invalid, seconds=time.monotonic() - began)
