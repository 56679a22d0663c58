"""Redis online store: one Lua script call per batch, atomic, one round trip.

Key layout ``fs4`` (pinned by a test), per entity ``<entity>:<id>``:

- ``fraud:fs4:log:<entity>:<id>``: sorted set scored by event time (epoch ms); members are
  20 bytes (time in ms and amount as big-endian IEEE doubles, then the CRC-32 of the
  counterparty id as a big-endian uint32) followed by the transaction id. Trimmed to the
  longest window plus the lateness allowance on every write.
- ``fraud:fs4:win:<entity>:<id>``: string, the running state of the windows ending at t
  that need sums, maxima or counterparties: big-endian doubles, the windows' signature
  (CRC-32 of ``<ms>:<1 if it counts counterparties else 0>`` per window, comma-joined; a
  state of another feature set is rebuilt from the log), the time of the newest event,
  then per window (shortest first) count, sum and its compensation, sum of squares
  and its compensation, max, oldest event time, distinct counterparties.
- ``fraud:fs4:party:<entity>:<id>``: hash, ``>BI`` (window number from 1, counterparty
  CRC-32) -> how many of the window's events have that counterparty.
- ``fraud:fs4:frauds:<entity>:<id>``: hash ``<transaction_id>`` -> ``<ts>|<label ts>|<amount>``
  of the entity's transactions labelled fraud (only for entities with label features).
- ``fraud:fs4:tx:<transaction_id>:<entity>``: ``<ts>|<ttl>|<amount>|<frauds key>``, so a
  label, which names only the transaction, finds the entity it updates. Amounts are
  written with 17 significant digits: they read back as the same double.

``fs4`` added the amounts (fraud-amount features); an ``fs3`` state is not read, so
re-run ``fraud features materialize`` after the upgrade.

Every key expires the longest window plus the lateness allowance after its last write.
The script (``read_update.lua``) builds the keys from the ids itself, so one call may touch
keys on any slot: use a single Redis primary, not a cluster.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from feature_store.errors import OnlineStoreUnavailable
from feature_store.online.base import LATENESS_MS, EntityRequest, LabelUpdate, party_hash
from feature_store.plan import LABEL_KINDS, RUN_KINDS, SCAN_KINDS, AggSpec, EntityPlan

__all__ = ["KEY_LAYOUT_VERSION", "RedisOnlineStore", "frauds_key", "log_key", "tx_key"]

KEY_LAYOUT_VERSION: Final = "fs4"
_PREFIX: Final = f"fraud:{KEY_LAYOUT_VERSION}"


_SCRIPT: Final = (Path(__file__).parent / "read_update.lua").read_text()
_HEAD: Final = struct.Struct(">BddIHH")


def log_key(entity: str, entity_id: str) -> str:
    return f"{_PREFIX}:log:{entity}:{entity_id}"


def frauds_key(entity: str, entity_id: str) -> str:
    return f"{_PREFIX}:frauds:{entity}:{entity_id}"


def tx_key(transaction_id: str, entity: str) -> str:
    """Where a later label finds the entity a transaction belonged to."""
    return f"{_PREFIX}:tx:{transaction_id}:{entity}"


def encode_batch(requests: Sequence[EntityRequest]) -> bytes:
    """The script's one argument: a ``>BddIHH`` head per request, then its two ids."""
    parts: list[bytes] = []
    for r in requests:
        entity_id, transaction_id = r.entity_id.encode(), r.transaction_id.encode()
        parts.append(
            _HEAD.pack(
                r.plan,
                r.ts_ms,
                r.amount,
                party_hash(r.counterparty_id),
                len(entity_id),
                len(transaction_id),
            )
        )
        parts.append(entity_id)
        parts.append(transaction_id)
    return b"".join(parts)


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
    """The plan as the script reads it.

    ``wins``: the windows ending at t that keep running state (those with sums, maxima or
    counterparties), shortest first. Per aggregate: kind, lo, hi, how it is answered
    (``st``: window state, slot ``wins[slot]``; ``last``: the state's newest time; ``zc``:
    ZCOUNT; ``fr``: the fraud hash; ``run``: the log walked back against the fraud hash;
    ``scan``: a scan of its delayed window).
    """
    stateful = sorted(
        {a.lo_ms for a in plan.aggs if a.hi_ms == 0 and a.kind in SCAN_KINDS - {"last_ts"}}
    )
    party = {a.lo_ms for a in plan.aggs if a.hi_ms == 0 and a.kind in ("distinct", "seen")}
    aggs: list[list[Any]] = []
    delayed: list[AggSpec] = []
    for a in plan.aggs:
        slot = stateful.index(a.lo_ms) + 1 if a.hi_ms == 0 and a.lo_ms in stateful else 0
        if a.kind == "last_ts" and a.hi_ms == 0:
            mode = "last"
        elif slot and a.kind not in LABEL_KINDS:
            mode = "st"
        elif a.kind == "count":
            mode = "zc"
        elif a.kind in RUN_KINDS:
            mode = "run"
        elif a.kind in LABEL_KINDS:
            mode = "fr"
        else:
            mode = "scan"
            delayed.append(a)
        aggs.append([a.kind, a.lo_ms, a.hi_ms, mode, slot])
    lua: dict[str, Any] = {
        "entity": plan.entity,
        "aggs": aggs,
        "wins": [{"w": w, "party": w in party} for w in stateful],
        "party": bool(party),
        "horizon": plan.horizon_ms,
        "scan": plan.scan_lo_ms,
        "labels": plan.needs_labels,
        "rowfmt": ">" + "d" * len(aggs),
        "statefmt": ">dd" + "d" * 8 * len(stateful),
        "sig": zlib.crc32(",".join(f"{w}:{int(w in party)}" for w in stateful).encode()),
    }
    if delayed:
        lua["dscan"] = [max(a.lo_ms for a in delayed), min(a.hi_ms for a in delayed)]
    return lua


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
            source = (
                _SCRIPT.replace("__PLANS__", _lua_table([_plan_for_lua(p) for p in plans]), 1)
                .replace("__PREFIX__", json.dumps(f"{_PREFIX}:"), 1)
                .replace("__LATENESS__", str(LATENESS_MS), 1)
            )
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
        try:
            raw = await self._script_for(plans)(args=[encode_batch(requests)])
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc
        flat = np.frombuffer(raw, dtype=">f8").astype(np.float64)
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
                ts, keep, amount, key = text.split("|", 3)
                if label.is_fraud:
                    pipe.hset(key, label.transaction_id, f"{ts}|{label.label_ts_ms}|{amount}")
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
