"""Malformed events for the DLQ, and the pacing of the live producer (no Kafka needed)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from feature_store.errors import InvalidEvent
from feature_store.schema import Transaction, TransactionCodec
from simulator import (
    INVALID_KINDS,
    SimulatedEvent,
    SimulationConfig,
    TrafficGenerator,
    invalid_payload,
    produce_live,
    replay_start,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.flushes = 0

    def send(self, topic: str, *, key: bytes | None = None, value: bytes | None = None) -> None:
        self.sent.append((topic, key, value))

    def flush(self) -> None:
        self.flushes += 1


def _events() -> Iterator[SimulatedEvent]:
    gen = TrafficGenerator(SimulationConfig(cards=200, merchants=30))
    start = replay_start(now=NOW, rate=1000, duration_s=1, tx_per_day=gen.expected_tx_per_day)
    return gen.events(start=start)


def _tx() -> Transaction:
    return next(_events()).transaction


@pytest.mark.parametrize("kind", INVALID_KINDS)
def test_each_invalid_payload_is_rejected_with_its_reason(kind: str) -> None:
    raw = invalid_payload(kind, _tx(), now=NOW)  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent) as caught:
        TransactionCodec().decode(raw, now=NOW.timestamp())
    assert caught.value.reason == kind


def test_valid_events_decode_unchanged() -> None:
    codec = TransactionCodec()
    for event in itertools.islice(_events(), 200):
        raw = codec.encode(event.transaction)
        assert codec.decode(raw, now=NOW.timestamp()) == event.transaction


def test_replay_start_keeps_the_simulated_clock_behind_the_wall_clock() -> None:
    gen = TrafficGenerator(SimulationConfig(cards=200, merchants=30))
    start = replay_start(now=NOW, rate=500, duration_s=10, tx_per_day=gen.expected_tx_per_day)
    last = list(itertools.islice(gen.events(start=start), 5000))[-1]
    assert start < last.transaction.event_time <= NOW + timedelta(minutes=5)


@pytest.mark.parametrize("seed", [3, 12])
def test_a_run_through_quiet_hours_stays_behind_the_wall_clock(seed: int) -> None:
    """5,000 events of a default-size population, 0.85 of an average day: from this start
    the night comes first, and without a margin up to 77 minutes of them were ahead of
    the wall clock (dead-lettered as future_timestamp)."""
    gen = TrafficGenerator(SimulationConfig(seed=seed))
    start = replay_start(now=NOW, rate=50, duration_s=100, tx_per_day=gen.expected_tx_per_day)
    last = list(itertools.islice(gen.events(start=start), 5000))[-1]
    assert last.transaction.event_time <= NOW


def test_produce_live_holds_the_rate() -> None:
    producer = FakeProducer()
    stats = produce_live(producer=producer, topic="tx", events=_events(), rate=2000, duration_s=0.5)
    assert stats.sent == len(producer.sent)
    assert stats.sent == pytest.approx(1000, rel=0.05)
    assert stats.invalid_sent == 0
    assert stats.seconds == pytest.approx(0.5, abs=0.1)
    assert producer.flushes == 1
    topic, key, value = producer.sent[0]
    assert topic == "tx"
    assert value is not None
    tx = TransactionCodec().decode(value, now=NOW.timestamp())
    assert key == tx.card_id.encode()


def test_produce_live_at_a_low_rate_sleeps_between_events() -> None:
    producer = FakeProducer()
    stats = produce_live(producer=producer, topic="tx", events=_events(), rate=40, duration_s=0.5)
    assert stats.sent == pytest.approx(20, abs=2)
    assert stats.seconds == pytest.approx(0.5, abs=0.1)


def test_produce_live_mixes_in_invalid_events_and_reports_them() -> None:
    producer = FakeProducer()
    seen: list[tuple[SimulatedEvent | None, bytes]] = []
    stats = produce_live(
        producer=producer,
        topic="tx",
        events=_events(),
        rate=5000,
        duration_s=0.3,
        invalid_rate=0.2,
        rng_seed=3,
        on_sent=lambda event, raw: seen.append((event, raw)),
    )
    assert len(seen) == stats.sent
    invalid = [raw for event, raw in seen if event is None]
    assert len(invalid) == stats.invalid_sent
    assert stats.invalid_sent == pytest.approx(0.2 * stats.sent, rel=0.25)
    codec = TransactionCodec()
    reasons = []
    for raw in invalid:
        with pytest.raises(InvalidEvent) as caught:
            codec.decode(raw, now=datetime.now(UTC).timestamp())
        reasons.append(caught.value.reason)
    assert set(reasons) == set(INVALID_KINDS)
    for event, raw in seen:
        if event is not None:
            assert raw == codec.encode(event.transaction)


def test_produce_live_stops_when_asked() -> None:
    producer = FakeProducer()
    stop = threading.Event()
    stop.set()
    stats = produce_live(
        producer=producer, topic="tx", events=_events(), rate=1000, duration_s=5, stop=stop
    )
    assert stats.sent == 0
    assert producer.flushes == 1


def test_produce_live_stops_when_events_run_out() -> None:
    producer = FakeProducer()
    events = itertools.islice(_events(), 7)
    stats = produce_live(producer=producer, topic="tx", events=events, rate=1000, duration_s=5)
    assert stats.sent == 7
    assert stats.seconds < 1


def test_produce_live_refuses_a_bad_rate() -> None:
    with pytest.raises(ValueError, match="rate=0"):
        produce_live(producer=FakeProducer(), topic="tx", events=_events(), rate=0, duration_s=1)
