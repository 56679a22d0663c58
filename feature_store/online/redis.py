"""Redis online store: one Lua script call per batch, atomic, one round trip.

Key layout (version ``fs1``, pinned by a test): ``fraud:fs1:<entity>:<entity id>`` is a
sorted set scored by event time in epoch milliseconds, whose members are
``<transaction_id>|<amount>``. A key expires ``horizon + lateness`` after its last event,
and events older than that are trimmed on every write, so no state outlives its use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online.base import LATENESS_MS, EntityEvent, History, LogEntry

__all__ = ["KEY_LAYOUT_VERSION", "RedisOnlineStore", "entity_key"]

KEY_LAYOUT_VERSION: Final = "fs1"

_READ_UPDATE = """
local out = {}
for i = 1, #KEYS do
  local b = (i - 1) * 3
  local ts = tonumber(ARGV[b + 1])
  local horizon = tonumber(ARGV[b + 3])
  local key = KEYS[i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (ts - horizon - LATENESS))
  out[i] = redis.call('ZRANGEBYSCORE', key, ts - horizon, ts, 'WITHSCORES')
  redis.call('ZADD', key, ts, ARGV[b + 2])
  redis.call('PEXPIRE', key, horizon + LATENESS)
end
return out
""".replace("LATENESS", str(LATENESS_MS))


def entity_key(entity: str, entity_id: str) -> str:
    return f"fraud:{KEY_LAYOUT_VERSION}:{entity}:{entity_id}"


class RedisOnlineStore:
    def __init__(self, *, url: str, timeout_s: float = 1.0) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script = self._client.register_script(_READ_UPDATE)
        self._url_for_errors = url.split("@")[-1]  # never echo a password

    async def read_update_batch(self, events: Sequence[EntityEvent]) -> list[History]:
        if not events:
            return []
        keys: list[str] = []
        args: list[Any] = []
        for event in events:
            keys.append(event.key)
            args += (event.ts_ms, f"{event.transaction_id}|{event.amount!r}", event.horizon_ms)
        try:
            raw = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise OnlineStoreUnavailable(
                f"Redis at {self._url_for_errors} failed: {exc}; check FRAUD_REDIS_URL "
                "and that the server is up"
            ) from exc
        return [_parse(flat) for flat in raw]

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise OnlineStoreUnavailable(
                f"Redis at {self._url_for_errors} is unreachable: {exc}"
            ) from exc

    async def close(self) -> None:
        await self._client.aclose()


def _parse(flat: list[bytes]) -> History:
    history: History = []
    for i in range(0, len(flat), 2):
        transaction_id, _, amount = flat[i].decode().rpartition("|")
        history.append(LogEntry(int(float(flat[i + 1])), transaction_id, float(amount)))
    return history
