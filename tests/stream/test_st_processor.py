"""The hot path without Kafka: decisions carry the contract's fields; bad events go to DLQ."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from batch_training.errors import ModelIntegrityError
from batch_training.registry import ModelRegistry
from embedded import free_port
from feature_store import TransactionCodec
from feature_store.online import (
    MemoryOnlineStore,
    OnlineFeatureEngine,
    OnlineStore,
    RedisOnlineStore,
)
from stream import BatchOutput, BatchProcessor, RawEvent
from stream.scoring import load_serving_model
from tests.conftest import rewrite_metadata

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def _processor(registry: ModelRegistry, store: OnlineStore) -> BatchProcessor:
    model = load_serving_model(registry)
    return BatchProcessor(
        codec=TransactionCodec(),
        engine=OnlineFeatureEngine(feature_set=model.feature_set, store=store),
        model=model,
        fallback="review",
        clock=lambda: NOW.timestamp(),
    )


def _raw(i: int, **changes: object) -> RawEvent:
    event = {
        "transaction_id": f"tx{i}",
        "event_time": (NOW - timedelta(minutes=60 - i)).isoformat(),
        "card_id": f"card_{i % 3}",
        "merchant_id": "merch_1",
        "amount": 20.0 + i,
        **changes,
    }
    return RawEvent(
        value=json.dumps(event).encode(),
        produced_at=NOW.timestamp() - 0.25,
        topic="transactions",
        partition=0,
        offset=i,
    )


def _process(processor: BatchProcessor, events: list[RawEvent]) -> BatchOutput:
    return asyncio.run(processor.process(events))


def test_every_valid_event_gets_one_complete_decision(trained_registry: ModelRegistry) -> None:
    out = _process(_processor(trained_registry, MemoryOnlineStore()), [_raw(i) for i in range(10)])
    assert [d.transaction_id for d in out.decisions] == [f"tx{i}" for i in range(10)]
    assert not out.dead_letters
    for d in out.decisions:
        assert d.score is not None
        assert 0.0 <= d.score <= 1.0
        assert d.decision in {"approve", "review", "decline"}
        assert d.model_version == 1
        assert d.feature_set_version.startswith("core.v2@")
        assert d.degraded is False
        assert d.latency_ms == pytest.approx(250.0)
        assert isinstance(d.reason_codes, list)
        assert (d.decision == "approve") == (not d.reason_codes)


def test_bad_events_go_to_the_dlq_with_reason_and_no_card_number(
    trained_registry: ModelRegistry,
) -> None:
    events = [
        _raw(1),
        _raw(2, amount=-3),
        _raw(3, card_id="4111111111111111"),
        _raw(5, card_id="4111\t1111\t1111\t1111"),  # JSON writes it "4111\\t1111..."
        RawEvent(value=b"{oops", produced_at=0.0, topic="transactions", partition=1, offset=9),
        RawEvent(value=None, produced_at=0.0, topic="transactions", partition=1, offset=10),
        _raw(4),
    ]
    out = _process(_processor(trained_registry, MemoryOnlineStore()), events)
    assert [d.transaction_id for d in out.decisions] == ["tx1", "tx4"]
    reasons = [(letter.reason, letter.source_offset) for letter in out.dead_letters]
    assert reasons == [
        ("invalid_amount", 2),
        ("pan_in_card_id", 3),
        ("pan_in_card_id", 5),
        ("malformed_json", 9),
        ("malformed_json", 10),
    ]
    assert all("4111111111111111" not in letter.payload for letter in out.dead_letters)
    assert all("1111" not in letter.payload for letter in out.dead_letters)
    assert '"card_id":"[PAN-REDACTED]"' in out.dead_letters[2].payload.replace(" ", "")


def test_a_dead_redis_degrades_to_the_fallback_instead_of_failing(
    trained_registry: ModelRegistry,
) -> None:
    dead = RedisOnlineStore(url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    out = _process(_processor(trained_registry, dead), [_raw(i) for i in range(5)])
    assert len(out.decisions) == 5
    assert all(d.degraded and d.decision == "review" and d.score is None for d in out.decisions)
    assert out.decisions[0].reason_codes == ["degraded:online_store_unavailable"]


def test_the_stream_refuses_a_model_of_other_features(registry_copy: ModelRegistry) -> None:
    meta_file = registry_copy.root / "versions" / "1" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["feature_set_fingerprint"] = "0" * 64
    rewrite_metadata(meta_file.parent, json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="retrain with this release's features"):
        load_serving_model(registry_copy)


def test_flagged_decisions_explain_themselves(trained_registry: ModelRegistry) -> None:
    processor = _processor(trained_registry, MemoryOnlineStore())
    # a card's history of small payments, then a very large one at a new merchant at night
    usual = [_raw(i, amount=15.0 + i % 3, card_id="card_x") for i in range(20)]
    big = _raw(59, amount=9_500.0, card_id="card_x", merchant_id="merch_new")
    out = _process(processor, [*usual, big])
    flagged = [d for d in out.decisions if d.decision != "approve"]
    assert flagged, "a 600x amount should at least be reviewed"
    last = out.decisions[-1]
    assert last.decision in {"review", "decline"}
    assert last.reason_codes[0].startswith("score ")
    assert 2 <= len(last.reason_codes) <= 4  # the threshold rule + up to 3 contributions
    assert any("amount" in reason for reason in last.reason_codes[1:])
    approved = [d for d in out.decisions if d.decision == "approve"]
    assert all(d.reason_codes == [] for d in approved)
