"""The decision ledger: the first decision for a transaction id is the one of record."""

from __future__ import annotations

import asyncio

import pytest
import redis

from stream.ledger import LEDGER_TTL_MS, DecisionLedger, MemoryLedger, RedisLedger
from stream.records import Decision, DecisionRecord


def _record(tx: str, decision: Decision) -> DecisionRecord:
    return DecisionRecord(
        transaction_id=tx,
        card_id="c",
        merchant_id="m",
        amount=1.0,
        event_time="2025-01-01T00:00:00Z",
        score=0.5,
        decision=decision,
        reason_codes=[],
        model_version=1,
        feature_set_version="core.v2@x",
        degraded=False,
        latency_ms=1.0,
        decided_at=0.0,
    )


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_redelivery_gets_the_first_decision(backend: str, redis_url: str, unique: str) -> None:
    async def run() -> tuple[list[str], list[str]]:
        ledger: DecisionLedger = (
            MemoryLedger() if backend == "memory" else RedisLedger(url=redis_url)
        )
        try:
            first = await ledger.settle(
                [_record(f"{unique}a", "review"), _record(f"{unique}b", "approve")]
            )
            again = await ledger.settle(
                [_record(f"{unique}a", "decline"), _record(f"{unique}c", "decline")]
            )
        finally:
            await ledger.close()
        return [r.decision for r in first], [r.decision for r in again]

    first, again = asyncio.run(run())
    assert first == ["review", "approve"]
    assert again == ["review", "decline"]  # "a" keeps its first decision; "c" is new


def test_the_redis_ledger_settles_a_batch_in_one_call_with_a_ttl(
    redis_url: str, unique: str
) -> None:
    """Duplicates inside one batch get the batch's first decision; every key expires."""
    ids = [f"{unique}{i}" for i in range(300)]

    async def run() -> tuple[list[str], list[str]]:
        ledger = RedisLedger(url=redis_url)
        try:
            first = await ledger.settle(
                [_record(tx, "approve") for tx in ids] + [_record(ids[7], "decline")]
            )
            again = await ledger.settle([_record(tx, "review") for tx in ids[::-1]])
        finally:
            await ledger.close()
        return [r.decision for r in first], [r.decision for r in again]

    first, again = asyncio.run(run())
    assert first == ["approve"] * 301  # the in-batch duplicate of ids[7] re-emits its first
    assert again == ["approve"] * 300
    client = redis.Redis.from_url(redis_url)
    try:
        ttl = client.pttl(f"fraud:fs2:decision:{ids[0]}")
        assert LEDGER_TTL_MS - 60_000 < ttl <= LEDGER_TTL_MS
        assert client.get(f"fraud:fs2:decision:{ids[-1]}") is not None
    finally:
        client.close()
