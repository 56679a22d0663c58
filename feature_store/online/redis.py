"""Redis online store: one Lua script call per batch, atomic, one round trip.

Key layout ``fs2`` (pinned by a test):

- ``fraud:fs2:log:<entity>:<id>``: sorted set scored by event time (epoch ms), members
  ``<transaction_id>|<amount>|<counterparty id>``; trimmed to the longest window plus
  the lateness allowance on every write, and expiring that long after the last one.
- ``fraud:fs2:frauds:<entity>:<id>``: hash ``<transaction_id>`` -> ``<ts>|<label ts>`` of
  the entity's transactions labelled fraud (only for entities with fraud-rate features).
- ``fraud:fs2:tx:<transaction_id>``: ``<ts>|<ttl>|<frauds key>[,<frauds key>]``, so a label,
  which names only the transaction, finds the entities it updates.

Counts use ZCOUNT (no scan); sums, maxima and distinct counterparts scan the entity's
window once. Keys of one call may live on different slots: use a single Redis primary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online.base import LATENESS_MS, EntityRequest, LabelUpdate
from feature_store.plan import EntityPlan

__all__ = ["KEY_LAYOUT_VERSION", "RedisOnlineStore", "frauds_key", "log_key", "tx_key"]

KEY_LAYOUT_VERSION: Final = "fs2"
_PREFIX: Final = f"fraud:{KEY_LAYOUT_VERSION}"


def log_key(entity: str, entity_id: str) -> str:
    return f"{_PREFIX}:log:{entity}:{entity_id}"


def frauds_key(entity: str, entity_id: str) -> str:
    return f"{_PREFIX}:frauds:{entity}:{entity_id}"


def tx_key(transaction_id: str) -> str:
    return f"{_PREFIX}:tx:{transaction_id}"


_READ_UPDATE: Final = """
local plans = cjson.decode(ARGV[1])
local lateness = tonumber(ARGV[2])
local out = {}
local nan = 'nan'
for r = 0, #KEYS / 3 - 1 do
  local logkey, fraudkey, txkey = KEYS[3 * r + 1], KEYS[3 * r + 2], KEYS[3 * r + 3]
  local b = 2 + 5 * r
  local plan = plans[tonumber(ARGV[b + 1]) + 1]
  local ts = tonumber(ARGV[b + 2])
  local txid, party = ARGV[b + 3], ARGV[b + 5]
  local member = txid .. '|' .. ARGV[b + 4] .. '|' .. party
  local keep = plan.horizon + lateness
  redis.call('ZREM', logkey, member)  -- a redelivery must not see itself
  redis.call('ZREMRANGEBYSCORE', logkey, '-inf', '(' .. (ts - keep))
  local ets, eamt, eparty, n = {}, {}, {}, 0
  if plan.scan > 0 then
    local raw = redis.call('ZRANGEBYSCORE', logkey, '(' .. (ts - plan.scan), ts, 'WITHSCORES')
    for i = 1, #raw, 2 do
      local m = raw[i]
      local p1 = string.find(m, '|', 1, true)
      local p2 = string.find(m, '|', p1 + 1, true)
      n = n + 1
      ets[n] = tonumber(raw[i + 1])
      eamt[n] = tonumber(string.sub(m, p1 + 1, p2 - 1))
      eparty[n] = string.sub(m, p2 + 1)
    end
  end
  local frauds = {}
  if plan.labels then
    local raw = redis.call('HGETALL', fraudkey)
    for i = 1, #raw, 2 do
      local v = raw[i + 1]
      local p = string.find(v, '|', 1, true)
      local fts = tonumber(string.sub(v, 1, p - 1))
      if fts < ts - keep then
        redis.call('HDEL', fraudkey, raw[i])
      else
        frauds[#frauds + 1] = {fts, tonumber(string.sub(v, p + 1))}
      end
    end
  end
  for _, agg in ipairs(plan.aggs) do
    local kind, lo, hi = agg[1], ts - agg[2], ts - agg[3]
    local v = 0
    if kind == 'count' then
      v = redis.call('ZCOUNT', logkey, '(' .. lo, hi)
    elseif kind == 'fraud' then
      for _, f in ipairs(frauds) do
        if f[1] > lo and f[1] <= hi and f[2] <= ts then v = v + 1 end
      end
    elseif kind == 'sum' then
      for i = 1, n do if ets[i] > lo and ets[i] <= hi then v = v + eamt[i] end end
    elseif kind == 'sumsq' then
      for i = 1, n do if ets[i] > lo and ets[i] <= hi then v = v + eamt[i] * eamt[i] end end
    elseif kind == 'max' then
      v = nil
      for i = 1, n do
        if ets[i] > lo and ets[i] <= hi and (v == nil or eamt[i] > v) then v = eamt[i] end
      end
    elseif kind == 'last_ts' then
      v = nil
      for i = 1, n do if ets[i] > lo and ets[i] <= hi then v = ets[i] end end
    elseif kind == 'distinct' then
      local seen = {}
      for i = 1, n do
        if ets[i] > lo and ets[i] <= hi and not seen[eparty[i]] then
          seen[eparty[i]] = true
          v = v + 1
        end
      end
    elseif kind == 'seen' then
      for i = 1, n do
        if ets[i] > lo and ets[i] <= hi and eparty[i] == party then v = 1 end
      end
    end
    out[#out + 1] = v == nil and nan or string.format('%.17g', v)
  end
  redis.call('ZADD', logkey, ts, member)
  redis.call('PEXPIRE', logkey, keep)
  if plan.labels then
    local cur = redis.call('GET', txkey)
    local refs = fraudkey
    if cur then
      local p2 = string.find(cur, '|', string.find(cur, '|', 1, true) + 1, true)
      local old = string.sub(cur, p2 + 1)
      if string.find(',' .. old .. ',', ',' .. fraudkey .. ',', 1, true) then
        refs = old
      else
        refs = old .. ',' .. fraudkey
      end
    end
    redis.call('SET', txkey, ts .. '|' .. keep .. '|' .. refs, 'PX', keep)
  end
end
return out
"""


class RedisOnlineStore:
    def __init__(self, *, url: str, timeout_s: float = 1.0) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script = self._client.register_script(_READ_UPDATE)
        self._where = url.split("@")[-1]  # never echo a password
        self._plans_cache: tuple[tuple[EntityPlan, ...], str] | None = None

    def _plans_json(self, plans: Sequence[EntityPlan]) -> str:
        key = tuple(plans)
        if self._plans_cache is None or self._plans_cache[0] != key:
            encoded = json.dumps(
                [
                    {
                        "aggs": [[a.kind, a.lo_ms, a.hi_ms] for a in p.aggs],
                        "horizon": p.horizon_ms,
                        "scan": p.scan_lo_ms,
                        "labels": p.needs_labels,
                    }
                    for p in plans
                ]
            )
            self._plans_cache = (key, encoded)
        return self._plans_cache[1]

    def _unavailable(self, exc: Exception) -> OnlineStoreUnavailable:
        return OnlineStoreUnavailable(
            f"Redis at {self._where} failed: {exc}; check FRAUD_REDIS_URL and that it is up"
        )

    async def read_update_batch(
        self, plans: Sequence[EntityPlan], requests: Sequence[EntityRequest]
    ) -> np.ndarray:
        width = max((len(p.aggs) for p in plans), default=0)
        if not requests:
            return np.empty((0, width))
        keys: list[str] = []
        args: list[Any] = [self._plans_json(plans), LATENESS_MS]
        for r in requests:
            entity = plans[r.plan].entity
            keys += (
                log_key(entity, r.entity_id),
                frauds_key(entity, r.entity_id),
                tx_key(r.transaction_id),
            )
            args += (r.plan, r.ts_ms, r.transaction_id, repr(r.amount), r.counterparty_id)
        try:
            raw = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        flat = np.array(raw, dtype=np.bytes_).astype(np.float64)
        widths = [len(plans[r.plan].aggs) for r in requests]
        if all(w == width for w in widths):
            return flat.reshape(len(requests), width)
        out = np.full((len(requests), width), np.nan)
        offset = 0
        for row, w in enumerate(widths):
            out[row, :w] = flat[offset : offset + w]
            offset += w
        return out

    async def apply_labels(self, labels: Sequence[LabelUpdate]) -> int:
        if not labels:
            return 0
        try:
            mappings = await self._client.mget([tx_key(label.transaction_id) for label in labels])
            pipe = self._client.pipeline(transaction=True)
            matched = 0
            for label, mapping in zip(labels, mappings, strict=True):
                if mapping is None:
                    continue
                matched += 1
                text = mapping.decode() if isinstance(mapping, bytes) else mapping
                ts, keep, refs = text.split("|", 2)
                for key in refs.split(","):
                    if label.is_fraud:
                        pipe.hset(key, label.transaction_id, f"{ts}|{label.label_ts_ms}")
                        pipe.pexpire(key, int(keep))
                    else:
                        pipe.hdel(key, label.transaction_id)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return matched

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()
