"""The decision ledger: one decision per transaction id, even across crashes.

Kafka delivers at least once, and a redelivered transaction may not get the same features
back: a merchant's events come from every partition, and their interleaving differs on
replay. So the first decision taken for a transaction id is recorded (Redis
``SET NX GET``, one round trip per batch), and a redelivery re-emits that decision
instead of a new one. Duplicates on ``fraud.decisions`` therefore always carry the same
decision and can be dropped by ``transaction_id``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from feature_store import OnlineStoreUnavailable
from stream.records import DecisionRecord

__all__ = ["DecisionLedger", "MemoryLedger", "RedisLedger"]

LEDGER_TTL_MS: Final = 7 * 86_400_000  # longer than any redelivery after a restart


class DecisionLedger(Protocol):
    async def settle(self, records: Sequence[DecisionRecord]) -> list[DecisionRecord]:
        """The decision of record for each: the first one ever taken for its id."""
        ...

    async def close(self) -> None: ...


class MemoryLedger:
    """The embedded ledger: the last ``capacity`` decisions of this process."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._seen: OrderedDict[str, DecisionRecord] = OrderedDict()
        self._capacity = capacity

    async def settle(self, records: Sequence[DecisionRecord]) -> list[DecisionRecord]:
        out = []
        for record in records:
            first = self._seen.setdefault(record.transaction_id, record)
            out.append(first)
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
        return out

    async def close(self) -> None:
        return None


class RedisLedger:
    """``fraud:fs2:decision:<transaction id>`` holds the first decision's JSON for 7 days."""

    def __init__(self, *, url: str, timeout_s: float = 1.0) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(DecisionRecord).decode

    async def settle(self, records: Sequence[DecisionRecord]) -> list[DecisionRecord]:
        if not records:
            return []
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            pipe.set(
                f"fraud:fs2:decision:{record.transaction_id}",
                self._encode(record),
                nx=True,
                px=LEDGER_TTL_MS,
                get=True,
            )
        try:
            previous = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise OnlineStoreUnavailable(f"the decision ledger is unavailable: {exc}") from exc
        return [
            record if old is None else self._decode(old)
            for record, old in zip(records, previous, strict=True)
        ]

    async def close(self) -> None:
        await self._client.aclose()
