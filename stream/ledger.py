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

__all__ = ["LEDGER_TTL_MS", "DecisionLedger", "MemoryLedger", "RedisLedger"]

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


# One script call per batch: the batch's decisions travel as one newline-joined argument
# (compact JSON has no raw newline), so the client encodes N keys + 2 arguments instead of
# 7 arguments per record, the cost that dominated a pipeline of SET NX GET.
_SETTLE = """
local ttl, blob, out, pos = ARGV[1], ARGV[2], {}, 1
for i, key in ipairs(KEYS) do
  local stop = string.find(blob, "\\n", pos, true) or (#blob + 1)
  local old = redis.call("SET", key, string.sub(blob, pos, stop - 1), "NX", "PX", ttl, "GET")
  if old then
    out[#out + 1] = i
    out[#out + 1] = old
  end
  pos = stop + 1
end
return out
"""


class RedisLedger:
    """``fraud:fs2:decision:<transaction id>`` holds the first decision's JSON for 7 days."""

    def __init__(self, *, url: str, timeout_s: float = 1.0) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._settle = self._client.register_script(_SETTLE)
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(DecisionRecord).decode

    async def settle(self, records: Sequence[DecisionRecord]) -> list[DecisionRecord]:
        """Records whose id was already decided come back as that first decision."""
        if not records:
            return []
        keys = [f"fraud:fs2:decision:{record.transaction_id}" for record in records]
        blob = b"\n".join(self._encode(record) for record in records)
        try:
            previous = await self._settle(keys=keys, args=[LEDGER_TTL_MS, blob])
        except (RedisError, OSError) as exc:
            raise OnlineStoreUnavailable(f"the decision ledger is unavailable: {exc}") from exc
        out = list(records)
        for i in range(0, len(previous), 2):
            out[int(previous[i]) - 1] = self._decode(previous[i + 1])
        return out

    async def close(self) -> None:
        await self._client.aclose()
