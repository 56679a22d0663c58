"""What one step of the online store's Lua script costs inside this Redis.

    .venv/bin/python bench/redis_lua_costs.py [--json] [--redis-url URL]

Each probe runs 10,000 times inside one EVAL; the best of 5 runs is reported in µs per
iteration. Uses database 14 of the loopback server (REDIS_URL or --redis-url); the probes
touch only missing keys and one scratch hash, which is deleted. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import redis

__all__ = ["main"]

_N = 10_000
_DOUBLES = "{" + ",".join(str(i) for i in range(1, 43)) + "}"  # a 5-window state: 42 doubles
_PROBES = {
    "build 5 window tables": (
        "local x for i=1,__N__ do local st={} for k=1,5 do "
        "st[k]={cnt=1,s=2,sc=3,q=4,qc=5,mx=6,old=7,dist=8} end x=st end return 1"
    ),
    "unpack 42 doubles": (
        f"local f='>'..string.rep('d',42) local s=struct.pack(f, unpack({_DOUBLES})) "
        "local x for i=1,__N__ do x={struct.unpack(f, s)} end return 1"
    ),
    "pack 42 doubles": (
        f"local f='>'..string.rep('d',42) local t={_DOUBLES} "
        "local x for i=1,__N__ do x=struct.pack(f, unpack(t)) end return 1"
    ),
    "ZCOUNT (missing key)": (
        "for i=1,__N__ do redis.call('ZCOUNT','bench:none','(1','5') end return 1"
    ),
    "HINCRBY": "for i=1,__N__ do redis.call('HINCRBY','bench:lua:h','f',1) end return 1",
    "ZRANGEBYSCORE LIMIT (missing key)": (
        "for i=1,__N__ do "
        "redis.call('ZRANGEBYSCORE','bench:none','(1','+inf','LIMIT',0,3) end return 1"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    result: dict[str, float] = {}
    for name, source in _PROBES.items():
        script = source.replace("__N__", str(_N))
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            client.eval(script, 0)
            best = min(best, time.perf_counter() - t0)
        result[name] = round(best / _N * 1e6, 2)
    client.delete("bench:lua:h")
    client.close()
    if not args.json:
        for name, us in result.items():
            print(f"{name:36s} {us:6.2f} µs")
    print(json.dumps({"us_per_iteration": result}))


if __name__ == "__main__":
    main()
