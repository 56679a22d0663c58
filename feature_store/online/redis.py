"""Redis online store: one Lua script call per batch, atomic, one round trip.

Key layout ``fs2`` (pinned by a test):

- ``fraud:fs2:log:<entity>:<id>``: sorted set scored by event time (epoch ms); members are
  20 bytes (time in ms and amount as big-endian IEEE doubles, then the CRC-32 of the
  counterparty id as a big-endian uint32) followed by the transaction id, so a window scan
  decodes an entry with one ``struct.unpack`` and needs no scores. Trimmed to the longest
  window plus the lateness allowance on every write, expiring that long after the last one.
- ``fraud:fs2:frauds:<entity>:<id>``: hash ``<transaction_id>`` -> ``<ts>|<label ts>`` of
  the entity's transactions labelled fraud (only for entities with fraud-rate features).
- ``fraud:fs2:tx:<transaction_id>:<entity>``: ``<ts>|<ttl>|<frauds key>``, so a label,
  which names only the transaction, finds the entity it updates.

Counts use ZCOUNT (no scan); sums, maxima and distinct counterparts scan the entity's
window once. Keys of one call may live on different slots: use a single Redis primary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online.base import LATENESS_MS, EntityRequest, LabelUpdate, party_hash
from feature_store.plan import SCAN_KINDS, EntityPlan

__all__ = ["KEY_LAYOUT_VERSION", "RedisOnlineStore", "frauds_key", "log_key", "tx_key"]

KEY_LAYOUT_VERSION: Final = "fs2"
_PREFIX: Final = f"fraud:{KEY_LAYOUT_VERSION}"


def log_key(entity: str, entity_id: str) -> str:
    return f"{_PREFIX}:log:{entity}:{entity_id}"


def frauds_key(entity: str, entity_id: str) -> str:
    return f"{_PREFIX}:frauds:{entity}:{entity_id}"


def tx_key(transaction_id: str, entity: str) -> str:
    """Where a later label finds the entity a transaction belonged to."""
    return f"{_PREFIX}:tx:{transaction_id}:{entity}"


_READ_UPDATE: Final = """
local plans = PLANS
local lateness = tonumber(ARGV[1])
local out = {}
local find, sub, pack = string.find, string.sub, struct.pack
local tonumber = tonumber
local unpack = function(m) return struct.unpack('>ddI4', m) end
for r = 0, #KEYS / 3 - 1 do
  local logkey, fraudkey, txkey = KEYS[3 * r + 1], KEYS[3 * r + 2], KEYS[3 * r + 3]
  local b = 1 + 5 * r
  local plan = plans[tonumber(ARGV[b + 1]) + 1]
  local ts = tonumber(ARGV[b + 2])
  local txid, party = ARGV[b + 3], ARGV[b + 5]
  local party_hash = tonumber(party)
  -- fixed binary head (time, amount, counterparty hash): one unpack per scanned entry
  local member = pack('>ddI4', ts, tonumber(ARGV[b + 4]), tonumber(party)) .. txid
  local keep = plan.horizon + lateness
  redis.call('ZREM', logkey, member)  -- a redelivery must not see itself
  redis.call('ZREMRANGEBYSCORE', logkey, '-inf', '(' .. (ts - keep))
  local ets, eamt, eparty, n = {}, {}, {}, 0
  if plan.scan > 0 then
    local raw = redis.call('ZRANGEBYSCORE', logkey, '(' .. (ts - plan.scan), ts)
    for i = 1, #raw do
      local m = raw[i]
      n = n + 1
      ets[n], eamt[n], eparty[n] = unpack(m)
    end
  end
  local frauds = {}
  if plan.labels then
    local raw = redis.call('HGETALL', fraudkey)
    for i = 1, #raw, 2 do
      local v = raw[i + 1]
      local p = find(v, '|', 1, true)
      local fts = tonumber(sub(v, 1, p - 1))
      if fts < ts - keep then
        redis.call('HDEL', fraudkey, raw[i])
      else
        frauds[#frauds + 1] = {fts, tonumber(sub(v, p + 1))}
      end
    end
  end
  -- one pass, newest to oldest, fills every scanned window that ends at t
  local stats = {}
  local suffix = plan.suffix
  if n > 0 and #suffix > 0 then
    local w, cnt, sum, sq, mx, last, dist, seen = 1, 0, 0, 0, nil, nil, 0, 0
    local parties = {}
    for i = n, 1, -1 do
      local e = ets[i]
      while w <= #suffix and e <= ts - suffix[w] do
        stats[w] = {cnt, sum, sq, mx, last, dist, seen}
        w = w + 1
      end
      if w > #suffix then break end
      local a = eamt[i]
      cnt, sum, sq = cnt + 1, sum + a, sq + a * a
      if mx == nil or a > mx then mx = a end
      if last == nil then last = e end
      local p = eparty[i]
      if not parties[p] then parties[p] = true dist = dist + 1 end
      if p == party_hash then seen = 1 end
    end
    while w <= #suffix do
      stats[w] = {cnt, sum, sq, mx, last, dist, seen}
      w = w + 1
    end
  end
  local slot_of = {count = 1, sum = 2, sumsq = 3, max = 4, last_ts = 5, distinct = 6, seen = 7}
  for _, agg in ipairs(plan.aggs) do
    local kind, lo, hi, slot = agg[1], ts - agg[2], ts - agg[3], agg[4]
    local v = 0
    if slot > 0 then
      local st = stats[slot]
      if st == nil then
        if kind == 'max' or kind == 'last_ts' then v = nil end
      else
        v = st[slot_of[kind]]
      end
    elseif kind == 'count' then
      v = redis.call('ZCOUNT', logkey, '(' .. lo, hi)
    elseif kind == 'fraud' then
      for _, f in ipairs(frauds) do
        if f[1] > lo and f[1] <= hi and f[2] <= ts then v = v + 1 end
      end
    else  -- a scanned aggregate over a delayed window
      for i = 1, n do
        if ets[i] > lo and ets[i] <= hi then
          local a = eamt[i]
          if kind == 'sum' then v = v + a
          elseif kind == 'sumsq' then v = v + a * a
          elseif kind == 'max' then if v == 0 or a > v then v = a end
          elseif kind == 'last_ts' then v = ets[i]
          end
        end
      end
      if (kind == 'max' or kind == 'last_ts') and v == 0 then v = nil end
    end
    if v == nil then
      out[#out + 1] = 'nan'
    elseif kind == 'sum' or kind == 'sumsq' or kind == 'max' then
      out[#out + 1] = string.format('%.17g', v)
    else
      out[#out + 1] = v  -- an integer reply: no formatting
    end
  end
  redis.call('ZADD', logkey, ts, member)
  redis.call('PEXPIRE', logkey, keep)
  if plan.labels then
    redis.call('SET', txkey, ts .. '|' .. keep .. '|' .. fraudkey, 'PX', keep)
  end
end
return out
"""


def _lua_table(value: Any) -> str:
    """A Lua table constructor for plain data (lists, dicts with name keys, numbers, text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_lua_table(v)}" for k, v in value.items()) + "}"
    return "{" + ", ".join(_lua_table(v) for v in value) + "}"


def _plan_for_lua(plan: EntityPlan) -> dict[str, Any]:
    """The plan as the script reads it: windows ending at t that one scan can fill
    (``suffix``, shortest first) and, per aggregate, its slot there (0 = computed apart)."""
    scan_lo = plan.scan_lo_ms
    suffix = sorted(
        {
            a.lo_ms
            for a in plan.aggs
            if a.hi_ms == 0 and (a.kind in SCAN_KINDS or a.kind == "count") and a.lo_ms <= scan_lo
        }
    )
    aggs = []
    for a in plan.aggs:
        scannable = a.hi_ms == 0 and (a.kind in SCAN_KINDS or a.kind == "count")
        slot = suffix.index(a.lo_ms) + 1 if scannable and a.lo_ms in suffix else 0
        aggs.append([a.kind, a.lo_ms, a.hi_ms, slot])
    return {
        "aggs": aggs,
        "suffix": suffix,
        "horizon": plan.horizon_ms,
        "scan": scan_lo,
        "labels": plan.needs_labels,
    }


class RedisOnlineStore:
    def __init__(self, *, url: str, timeout_s: float = 1.0) -> None:
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._scripts: dict[int, tuple[Sequence[EntityPlan], AsyncScript]] = {}
        self._where = url.split("@")[-1]  # never echo a password

    def _script_for(self, plans: Sequence[EntityPlan]) -> AsyncScript:
        """The script with these plans compiled in: no per-call decoding in Redis."""
        cached = self._scripts.get(id(plans))
        if cached is None or cached[0] is not plans:
            source = _READ_UPDATE.replace("PLANS", _lua_table([_plan_for_lua(p) for p in plans]), 1)
            cached = (plans, self._client.register_script(source))
            self._scripts[id(plans)] = cached
        return cached[1]

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
        args: list[Any] = [LATENESS_MS]
        for r in requests:
            entity = plans[r.plan].entity
            keys += (
                log_key(entity, r.entity_id),
                frauds_key(entity, r.entity_id),
                tx_key(r.transaction_id, entity),
            )
            args += (
                r.plan,
                r.ts_ms,
                r.transaction_id,
                repr(r.amount),
                party_hash(r.counterparty_id),
            )
        try:
            raw = await self._script_for(plans)(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        flat = np.array([float(v) for v in raw], dtype=np.float64)
        widths = [len(plans[r.plan].aggs) for r in requests]
        if all(w == width for w in widths):
            return flat.reshape(len(requests), width)
        out = np.full((len(requests), width), np.nan)
        offset = 0
        for row, w in enumerate(widths):
            out[row, :w] = flat[offset : offset + w]
            offset += w
        return out

    async def apply_labels(self, plans: Sequence[EntityPlan], labels: Sequence[LabelUpdate]) -> int:
        entities = [p.entity for p in plans if p.needs_labels]
        if not labels or not entities:
            return 0
        try:
            keys = [tx_key(label.transaction_id, e) for label in labels for e in entities]
            mappings = await self._client.mget(keys)
            pipe = self._client.pipeline(transaction=True)
            matched: set[str] = set()
            for i, mapping in enumerate(mappings):
                if mapping is None:
                    continue
                label = labels[i // len(entities)]
                matched.add(label.transaction_id)
                text = mapping.decode() if isinstance(mapping, bytes) else mapping
                ts, keep, key = text.split("|", 2)
                if label.is_fraud:
                    pipe.hset(key, label.transaction_id, f"{ts}|{label.label_ts_ms}")
                    pipe.pexpire(key, int(keep))
                else:
                    pipe.hdel(key, label.transaction_id)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return len(matched)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()
