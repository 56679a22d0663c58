"""Review console benchmark: queue, case and dashboard pages over 1M cases in PostgreSQL.

    .venv/bin/python bench/review_queue.py [--json] [--cases 1000000] [--reuse]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/fraud_review_bench]

Uses its own database (``fraud_review_bench`` on the loopback server as user postgres, else
root; or --database-url / REVIEW_BENCH_DATABASE_URL), dropped and recreated first unless
--reuse. Cases (and --card-activity decisions, 0 for none) are loaded with COPY, secondary
indexes rebuilt afterwards, then VACUUM ANALYZE, as autovacuum would have left a live table;
the pages are timed on a warm cache. Each page is a full request through the real app
(FastAPI's TestClient: routing, session check, SQL, ORM, Jinja): median and p95 of
--repeat requests after --warmup ones, with the time spent in the database driver counted
apart (``db``). The SQL each page sends is captured and run again under EXPLAIN (ANALYZE,
BUFFERS). Progress and the table go to stderr; the last line of stdout is JSON, also written
to bench/results/review_queue.json next to a bar chart.
"""

# ruff: noqa: E402 - the imports follow the sys.path fix below

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ is first on sys.path, where bench/stream.py would shadow the
# ``stream`` package that review.ingest imports: take that folder off the path first.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import html
import json
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from review.auth import add_user, open_session
from review.cases import QueueFilter, queue_page
from review.database import make_engine, make_sessions, upgrade_schema
from review.schema import User
from review.web import SESSION_COOKIE, ConsoleConfig, create_app

DEFAULT_DB = "fraud_review_bench"
SLOW_MS = 200.0
DAYS = 90
CARDS = 50_000
MERCHANTS = 5_000
ANALYSTS = 25
CHUNK = 50_000
LEAD = "bench-lead"

CASE_COLUMNS = (
    "id, transaction_id, card_id, merchant_id, amount, event_time, score, sort_score, "
    "decision, reason_codes, rule_hits, model_version, feature_set_version, degraded, "
    "alerted_at, ingested_at, status, reviewed_by, reviewed_at, review_seconds"
)
ACTIVITY_COLUMNS = (
    "transaction_id, card_id, merchant_id, amount, event_time, decision, score, model_version"
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Strs = npt.NDArray[np.str_]
Objs = npt.NDArray[np.object_]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# the database


def _conninfo(url: str, database: str | None = None) -> dict[str, Any]:
    """psycopg keyword arguments for a SQLAlchemy URL (optionally another database)."""
    parsed = make_url(url)
    info: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username,
        "dbname": database or parsed.database,
        "connect_timeout": 5,
    }
    if parsed.password:
        info["password"] = parsed.password
    return {k: v for k, v in info.items() if v is not None}


def _pick_url(given: str | None) -> str:
    """--database-url, else the first of the users postgres and root the loopback server takes."""
    if given:
        return given
    errors = []
    for user in ("postgres", "root"):
        url = f"postgresql+psycopg://{user}@127.0.0.1:5432/{DEFAULT_DB}"
        try:
            psycopg.connect(**_conninfo(url, "postgres")).close()
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {str(exc).strip()}")
            continue
        return url
    raise SystemExit(
        "no PostgreSQL on 127.0.0.1:5432 for user postgres or root "
        f"({'; '.join(errors)}); pass --database-url"
    )


def _prepare_database(url: str, *, reuse: bool) -> bool:
    """Create the database (dropped first unless reuse); True when it already holds cases."""
    name = make_url(url).database
    if not name or not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"database name {name!r}: use lowercase letters, digits and '_'")
    with psycopg.connect(**_conninfo(url, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            with psycopg.connect(**_conninfo(url)) as conn:
                table = conn.execute("SELECT to_regclass('public.cases')").fetchone()
                if table and table[0]:
                    row = conn.execute("SELECT EXISTS (SELECT 1 FROM cases)").fetchone()
                    return bool(row and row[0])
            return False
        if exists:
            _say(f"dropping database {name}")
            admin.execute(f'DROP DATABASE "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return False


# ---------------------------------------------------------------------------------------------
# synthetic cases


def _splitmix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)


def _tx_ids(lo: int, hi: int, salt: int) -> list[str]:
    """Unique ``tx_xxxxxxxx_xxxxxxxx`` ids (a bijective mix of the row number, as the simulator)."""
    keys = _splitmix64(np.arange(lo, hi, dtype=np.uint64) ^ np.uint64(salt))
    high = (keys >> np.uint64(32)).tolist()
    low = (keys & np.uint64(0xFFFFFFFF)).tolist()
    return [f"tx_{h:08x}_{lw:08x}" for h, lw in zip(high, low, strict=True)]


def _hex_ids(rng: np.random.Generator, count: int, prefix: str, digits: int) -> Objs:
    values = rng.choice(1 << (4 * digits), size=count * 2, replace=False)[:count]
    return np.array([f"{prefix}{int(v):0{digits}x}" for v in values], dtype=object)


def _reason_pool(rng: np.random.Generator, size: int = 20_000) -> Objs:
    """Reason-code lists as the stream writes them (top three contributions), JSON-encoded."""
    phrases: list[Callable[[], str]] = [
        lambda: f"amount {rng.uniform(1.5, 15):.1f}x the card's 30 days average",
        lambda: f"amount {rng.uniform(1.2, 9):.1f}x the card's 7 days average",
        lambda: f"amount {rng.uniform(1.5, 6):+.1f} std from the card's 30 days mean",
        lambda: f"{rng.integers(3, 40)} card transactions in the last hour",
        lambda: f"{rng.integers(2, 15)} different merchants for the card in the last day",
        lambda: "first payment at this merchant",
        lambda: f"{rng.integers(5, 86_400):,}s since the card's previous transaction",
        lambda: f"merchant fraud rate {rng.uniform(0.01, 0.2):.1%} (30 days, labels known)",
        lambda: f"card sum amount {rng.lognormal(6, 1):,.2f} over the last day",
        lambda: f"at {rng.integers(0, 6)}h UTC",
        lambda: "channel is ecom",
    ]
    pool = []
    for _ in range(size):
        picks = rng.choice(len(phrases), size=3, replace=False)
        weights = sorted(rng.uniform(0.05, 2.5, size=3), reverse=True)
        reasons = [f"{phrases[p]()} (+{w:.2f})" for p, w in zip(picks, weights, strict=True)]
        pool.append(json.dumps(reasons))  # plain ASCII: no COPY escaping needed
    return np.array(pool, dtype=object)


def _zipf_weights(count: int, offset: float) -> Floats:
    weights = 1.0 / (np.arange(count, dtype=np.float64) + offset)
    return np.asarray(weights / weights.sum(), dtype=np.float64)


@dataclass
class Population:
    cards: Objs
    card_weights: Floats
    merchants: Objs
    merchant_weights: Floats


def _population(rng: np.random.Generator) -> Population:
    card_weights = rng.lognormal(0.0, 1.0, size=CARDS)
    return Population(
        cards=_hex_ids(rng, CARDS, "card_", 12),
        card_weights=np.asarray(card_weights / card_weights.sum(), dtype=np.float64),
        merchants=_hex_ids(rng, MERCHANTS, "merch_", 10),
        # a few big merchants (the busiest gets ~1.5% of alerts), a long tail of small ones
        merchant_weights=_zipf_weights(MERCHANTS, 10.0),
    )


def _timestamps(base: np.datetime64, age_s: Floats) -> Strs:
    """``now - age`` as PostgreSQL timestamp text (the load session runs in UTC)."""
    stamps = base - (age_s * 1e6).astype(np.int64).astype("timedelta64[us]")
    return np.datetime_as_string(stamps, unit="us")


def _rows(columns: list[list[str]]) -> bytes:
    return ("\n".join("\t".join(row) for row in zip(*columns, strict=True)) + "\n").encode()


def _model_version(age_days: Floats) -> Ints:
    # v1 until 60 days ago, v2 until 20 days ago, v3 since
    return np.asarray(np.where(age_days > 60, 1, np.where(age_days > 20, 2, 3)), dtype=np.int64)


def _case_chunks(
    n: int, rng: np.random.Generator, people: Population, now: datetime
) -> Iterator[tuple[int, bytes]]:
    """COPY text for ``n`` cases, oldest first (ids follow alert time, as ingestion gives)."""
    base = np.datetime64(now.replace(tzinfo=None), "us")
    # alert times: uniform days over DAYS, busier by day than by night; sorted oldest first
    day = rng.integers(0, DAYS, size=n)
    seconds = np.mod(rng.normal(14 * 3600, 4.5 * 3600, size=n), 86_400)
    age_s = np.sort(day * 86_400.0 + (86_400 - seconds))[::-1].copy()
    age_days = age_s / 86_400
    # scores: most alerts just over the review threshold, a second bump of clear fraud
    clear = rng.random(n) < 0.3
    score = np.round(
        0.3 + 0.7 * np.where(clear, rng.beta(5, 1.5, size=n), rng.beta(1.5, 4, size=n)), 6
    )
    # status: the backlog is recent (open share decays with age), leads' escalations linger
    u = rng.random(n)
    is_open = u < np.exp(-age_days / 10.8)
    escalated = ~is_open & (rng.random(n) < 0.034)
    closed = ~is_open & ~escalated
    fraud = closed & (rng.random(n) < 0.85 * ((score - 0.3) / 0.7) ** 1.5)
    status = np.where(is_open, "open", np.where(escalated, "escalated", "legit"))
    status = np.where(fraud, "fraud", status)
    review_s = np.round(np.minimum(rng.lognormal(np.log(2400), 1.1, size=n), age_s - 1), 1)
    review_s = np.maximum(review_s, 1.0)
    amount = np.round(np.maximum(rng.lognormal(np.log(80), 1.1, size=n), 0.5), 2)
    card = rng.choice(CARDS, size=n, p=people.card_weights)
    merchant = rng.choice(MERCHANTS, size=n, p=people.merchant_weights)
    latency_s = rng.uniform(0.05, 2.0, size=n)
    version = _model_version(age_days)
    reasons = _reason_pool(rng)
    reason_pick = rng.integers(0, len(reasons), size=n)
    analyst = np.array([f"analyst{i:02d}" for i in range(ANALYSTS)], dtype=object)
    analyst_pick = rng.integers(0, ANALYSTS, size=n)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        s = slice(lo, hi)
        alerted = _timestamps(base, age_s[s]).tolist()
        scores = score[s].astype(str).tolist()
        shut = closed[s] | fraud[s]
        columns = [
            np.arange(lo + 1, hi + 1).astype(str).tolist(),
            _tx_ids(lo, hi, 0xCA5E),
            people.cards[card[s]].tolist(),
            people.merchants[merchant[s]].tolist(),
            amount[s].astype(str).tolist(),
            _timestamps(base, age_s[s] + latency_s[s]).tolist(),
            scores,
            scores,
            np.where(score[s] >= 0.85, "decline", "review").tolist(),
            reasons[reason_pick[s]].tolist(),
            ["[]"] * (hi - lo),
            version[s].astype(str).tolist(),
            ["core-v2"] * (hi - lo),
            ["f"] * (hi - lo),
            alerted,
            alerted,
            status[s].tolist(),
            np.where(shut, analyst[analyst_pick[s]], "\\N").tolist(),
            np.where(shut, _timestamps(base, age_s[s] - review_s[s]), "\\N").tolist(),
            np.where(shut, review_s[s].astype(str), "\\N").tolist(),
        ]
        yield hi - lo, _rows(columns)


def _activity_chunks(
    n: int, rng: np.random.Generator, people: Population, now: datetime
) -> Iterator[tuple[int, bytes]]:
    """COPY text for ``n`` decisions (mostly approvals) on the same cards, oldest first."""
    base = np.datetime64(now.replace(tzinfo=None), "us")
    age_s = np.sort(rng.uniform(0, DAYS * 86_400, size=n))[::-1].copy()
    version = _model_version(age_s / 86_400)
    score = np.round(rng.beta(1.2, 12, size=n), 6)
    decision = np.where(score >= 0.85, "decline", np.where(score >= 0.3, "review", "approve"))
    amount = np.round(np.maximum(rng.lognormal(np.log(45), 1.0, size=n), 0.5), 2)
    card = rng.choice(CARDS, size=n, p=people.card_weights)
    merchant = rng.choice(MERCHANTS, size=n, p=people.merchant_weights)
    for lo in range(0, n, CHUNK):
        hi = min(lo + CHUNK, n)
        s = slice(lo, hi)
        columns = [
            _tx_ids(lo, hi, 0xAC7),
            people.cards[card[s]].tolist(),
            people.merchants[merchant[s]].tolist(),
            amount[s].astype(str).tolist(),
            _timestamps(base, age_s[s]).tolist(),
            decision[s].tolist(),
            score[s].astype(str).tolist(),
            version[s].astype(str).tolist(),
        ]
        yield hi - lo, _rows(columns)


def _prefetch(chunks: Iterator[tuple[int, bytes]], depth: int = 2) -> Iterator[tuple[int, bytes]]:
    """Build the next chunks in a thread while the server digests this one (COPY waits)."""
    ready: queue.Queue[tuple[int, bytes] | BaseException | None] = queue.Queue(depth)

    def produce() -> None:
        try:
            for chunk in chunks:
                ready.put(chunk)
            ready.put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    threading.Thread(target=produce, name="copy-rows", daemon=True).start()
    while (item := ready.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def _copy(
    conn: psycopg.Connection[Any], table: str, columns: str, chunks: Iterator[tuple[int, bytes]]
) -> tuple[float, float]:
    """COPY into ``table``, its secondary indexes dropped then rebuilt: (copy s, index s)."""
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE tablename = %s AND indexname LIKE 'ix_%%'",
        [table],
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    rows = 0
    started = time.perf_counter()
    with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for count, payload in _prefetch(chunks):
            copy.write(payload)
            rows += count
            if rows % (CHUNK * 4) == 0:
                rate = rows / (time.perf_counter() - started)
                _say(f"  {table}: {rows:,} rows ({rate:,.0f} rows/s)")
    elapsed = time.perf_counter() - started
    _say(f"  {table}: {rows:,} rows in {elapsed:.1f}s ({rows / elapsed:,.0f} rows/s)")
    started = time.perf_counter()
    for _, definition in indexes:
        conn.execute(definition)
    index_s = time.perf_counter() - started
    _say(f"  {table}: {len(indexes)} secondary indexes rebuilt in {index_s:.1f}s")
    return elapsed, index_s


def _load(url: str, cases: int, activity: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    people = _population(rng)
    started = time.perf_counter()
    with psycopg.connect(**_conninfo(url)) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET synchronous_commit = off")
        case_copy_s, case_index_s = _copy(
            conn, "cases", CASE_COLUMNS, _case_chunks(cases, rng, people, now)
        )
        conn.execute("SELECT setval(pg_get_serial_sequence('cases', 'id'), %s)", [max(cases, 1)])
        activity_copy_s = activity_index_s = 0.0
        if activity:
            activity_copy_s, activity_index_s = _copy(
                conn,
                "card_activity",
                ACTIVITY_COLUMNS,
                _activity_chunks(activity, rng, people, now),
            )
        conn.commit()
    vacuum_started = time.perf_counter()
    with psycopg.connect(**_conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) cases")
        conn.execute("VACUUM (ANALYZE) card_activity")
    vacuum_s = time.perf_counter() - vacuum_started
    total = time.perf_counter() - started
    _say(f"loaded in {total:.1f}s (VACUUM ANALYZE {vacuum_s:.1f}s)")
    return {
        "load_seconds": round(total, 1),
        "cases_copy_seconds": round(case_copy_s, 1),
        "cases_copy_rows_per_s": round(cases / case_copy_s),
        "cases_index_rebuild_seconds": round(case_index_s, 1),
        "card_activity_copy_seconds": round(activity_copy_s, 1),
        "card_activity_rows_per_s": round(activity / activity_copy_s) if activity else None,
        "card_activity_index_rebuild_seconds": round(activity_index_s, 1),
        "vacuum_analyze_seconds": round(vacuum_s, 1),
    }


def _sizes(url: str) -> dict[str, Any]:
    with psycopg.connect(**_conninfo(url)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM cases), (SELECT count(*) FROM card_activity), "
            "pg_relation_size('cases'), pg_indexes_size('cases'), "
            "pg_total_relation_size('card_activity')"
        ).fetchone()
        statuses = dict(conn.execute("SELECT status, count(*) FROM cases GROUP BY 1").fetchall())
    if row is None:
        raise RuntimeError("no sizes")
    mb = 1 << 20
    return {
        "cases": row[0],
        "card_activity": row[1],
        "cases_heap_mb": round(row[2] / mb),
        "cases_indexes_mb": round(row[3] / mb),
        "card_activity_mb": round(row[4] / mb),
        "statuses": statuses,
    }


# ---------------------------------------------------------------------------------------------
# timing requests, and the SQL they send


@dataclass
class SqlTap:
    """Engine hooks: time in the driver, and the statements of the request being recorded."""

    recording: bool = False
    statements: list[tuple[str, Any]] = field(default_factory=list)
    db_s: float = 0.0
    _started: float = 0.0

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        statement, parameters = args[2], args[3]
        if self.recording:
            self.statements.append((statement, parameters))
        self._started = time.perf_counter()

    def _after(self, *_args: Any) -> None:
        self.db_s += time.perf_counter() - self._started

    @contextmanager
    def record(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.recording = True
        try:
            yield self.statements
        finally:
            self.recording = False


def _rows_shown(body: str) -> int:
    return body.count('<tr class="status-')


def _get(client: TestClient, url: str) -> str:
    response = client.get(url, follow_redirects=False)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
    return response.text


def _next_page(body: str) -> str | None:
    found = re.search(r'id="next-page" href="([^"]+)"', body)
    return html.unescape(found.group(1)) if found else None


def _time_page(
    client: TestClient, tap: SqlTap, url: str, warmup: int, repeat: int
) -> dict[str, Any]:
    for _ in range(warmup):
        body = _get(client, url)
    totals, dbs = [], []
    for _ in range(repeat):
        tap.db_s = 0.0
        started = time.perf_counter()
        body = _get(client, url)
        totals.append((time.perf_counter() - started) * 1000)
        dbs.append(tap.db_s * 1000)
    return {
        "median_ms": round(float(np.median(totals)), 2),
        "p95_ms": round(float(np.percentile(totals, 95)), 2),
        "db_median_ms": round(float(np.median(dbs)), 2),
        "rows": _rows_shown(body) if url.startswith("/queue") else None,
        "bytes": len(body),
        "url": url if len(url) < 120 else url[:117] + "...",
    }


def _walk(node: Mapping[str, Any], out: list[Mapping[str, Any]]) -> None:
    out.append(node)
    for child in node.get("Plans", []):
        _walk(child, out)


def _summarize(plan_json: Mapping[str, Any]) -> dict[str, Any]:
    root = plan_json["Plan"]
    nodes: list[Mapping[str, Any]] = []
    _walk(root, nodes)
    shape = []
    for node in nodes:
        label = node["Node Type"]
        if "Index Name" in node:
            label += f" {node['Index Name']}"
        elif "Relation Name" in node:
            label += f" {node['Relation Name']}"
        if node.get("Index Cond"):
            label += f" [{node['Index Cond']}]"
        shape.append(label)
    kinds = {n["Node Type"] for n in nodes}
    jit = plan_json.get("JIT")
    return {
        "plan": " > ".join(shape),
        "index_scan": bool(kinds & {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}),
        "seq_scan": "Seq Scan" in kinds,
        "execution_ms": round(float(plan_json["Execution Time"]), 2),
        "rows_removed_by_filter": sum(int(n.get("Rows Removed by Filter", 0)) for n in nodes),
        # rows the scans read, kept or filtered out: the real cost of a LIMIT 51 page
        "rows_read": sum(
            (int(n.get("Actual Rows", 0)) + int(n.get("Rows Removed by Filter", 0)))
            * int(n.get("Actual Loops", 1))
            for n in nodes
            if n["Node Type"].endswith("Scan") and not n["Node Type"].startswith("Bitmap Index")
        ),
        "shared_hit": int(root.get("Shared Hit Blocks", 0)),
        "shared_read": int(root.get("Shared Read Blocks", 0)),
        "jit_ms": round(float(jit["Timing"]["Total"]), 1) if jit else None,
    }


def _explain(engine: Engine, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """EXPLAIN (ANALYZE, BUFFERS) each captured statement on the case tables."""
    out = []
    with engine.connect() as conn:
        for statement, parameters in statements:
            flat = " ".join(statement.split())
            if not re.search(r" FROM (cases|card_activity|verdicts)\b", flat):
                continue  # the session lookup (the same on every page), SELECT 1
            prefix = "EXPLAIN (ANALYZE, BUFFERS, FORMAT {}) "
            plan: Any = conn.exec_driver_sql(prefix.format("JSON") + statement, parameters).scalar()
            lines = conn.exec_driver_sql(prefix.format("TEXT") + statement, parameters)
            summary = _summarize(plan[0])
            summary["sql"] = flat
            summary["text"] = "\n".join(str(row[0]) for row in lines)
            out.append(summary)
    return out


def _login(sessions: sessionmaker[Session], config: ConsoleConfig) -> str:
    now = datetime.now(UTC)
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == LEAD))
        if user is None:
            user = add_user(
                session, username=LEAD, password=secrets.token_urlsafe(18), role="lead", now=now
            )
            session.flush()
        return open_session(session, user, now=now, policy=config.policy)


@dataclass(frozen=True)
class Targets:
    busiest_merchant: str
    typical_merchant: str
    busiest_card: str
    case_id: int
    day: date
    open_deep_cursor: str | None
    all_deep_cursor: str | None


def _targets(sessions: sessionmaker[Session]) -> Targets:
    """What the filters look for: real merchants, cards and dates of the loaded cases."""
    with sessions() as session:
        merchants = session.execute(
            text(
                "SELECT merchant_id, count(*) FILTER (WHERE status = 'open') FROM cases "
                "GROUP BY merchant_id ORDER BY count(*) DESC"
            )
        ).all()
        with_open = [m for m, n_open in merchants if n_open]
        card = session.execute(
            text("SELECT card_id FROM cases GROUP BY card_id ORDER BY count(*) DESC LIMIT 1")
        ).scalar_one()
        open_count = session.execute(
            text("SELECT count(*) FROM cases WHERE status = 'open'")
        ).scalar_one()
        total = session.execute(text("SELECT count(*) FROM cases")).scalar_one()
        # a case in the middle of the open queue, and its card (typical history)
        middle = session.execute(
            text(
                "SELECT id, alerted_at FROM cases WHERE status = 'open' "
                "ORDER BY alerted_at, id OFFSET :k LIMIT 1"
            ),
            {"k": open_count // 2},
        ).one()
        newest = session.execute(text("SELECT max(alerted_at) FROM cases")).scalar_one()
        # cursors 90% deep, handed out by queue_page itself: the first page of a queue that
        # starts (or ends) at that point carries a cursor valid for the whole queue
        open_at = session.execute(
            text(
                "SELECT alerted_at FROM cases WHERE status = 'open' "
                "ORDER BY alerted_at, id OFFSET :k LIMIT 1"
            ),
            {"k": int(open_count * 0.9)},
        ).scalar_one()
        all_at = session.execute(
            text(
                "SELECT alerted_at FROM cases ORDER BY alerted_at DESC, id DESC OFFSET :k LIMIT 1"
            ),
            {"k": int(total * 0.9)},
        ).scalar_one()
        open_cursor = queue_page(
            session, QueueFilter(status="open", since=open_at), sort="oldest", limit=1
        ).next_cursor
        all_cursor = queue_page(
            session, QueueFilter(status=None, until=all_at), sort="newest", limit=1
        ).next_cursor
    return Targets(
        busiest_merchant=merchants[0][0],
        typical_merchant=with_open[len(with_open) // 2],
        busiest_card=card,
        case_id=middle[0],
        day=(newest - timedelta(days=30)).date(),
        open_deep_cursor=open_cursor,
        all_deep_cursor=all_cursor,
    )


def _pages(client: TestClient, t: Targets, depth: int) -> dict[str, str]:
    url = "/queue"
    for _ in range(depth - 1):
        body = _get(client, url)
        following = _next_page(body)
        if following is None:
            raise RuntimeError(f"the open queue has fewer than {depth} pages")
        url = following
    pages = {
        "baseline /healthz": "/healthz",  # TestClient + middleware + SELECT 1: the floor
        "queue open oldest": "/queue",
        f"queue page {depth}": url,
        "queue sort=score": "/queue?sort=score",
        "queue sort=amount": "/queue?sort=amount",
        "queue all newest": "/queue?status=all&sort=newest",
        "filter score>=0.9": "/queue?score_min=0.9",
        "filter amount>=500": "/queue?amount_min=500",
        "filter busiest merchant": f"/queue?merchant={quote(t.busiest_merchant)}",
        "filter typical merchant": f"/queue?merchant={quote(t.typical_merchant)}",
        "filter busiest card": f"/queue?card={quote(t.busiest_card)}",
        "filter one day (all)": f"/queue?status=all&since={t.day}&until={t.day}",
    }
    if t.open_deep_cursor:
        pages["queue open 90% deep"] = f"/queue?cursor={quote(t.open_deep_cursor)}"
    if t.all_deep_cursor:
        pages["queue all newest 90% deep"] = (
            f"/queue?status=all&sort=newest&cursor={quote(t.all_deep_cursor)}"
        )
    pages["case page"] = f"/cases/{t.case_id}"
    pages["dashboard"] = "/dashboard"
    return pages


# ---------------------------------------------------------------------------------------------
# output


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pages = result["pages"]
    names = list(pages)[::-1]
    median = np.array([pages[n]["median_ms"] for n in names])
    db = np.minimum(np.array([pages[n]["db_median_ms"] for n in names]), median)
    p95 = np.array([pages[n]["p95_ms"] for n in names])
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 0.42 * len(names) + 1.6))
    ax.barh(y, db, color="#1f5fa0", label="in the database driver (median)")
    ax.barh(y, median - db, left=db, color="#9cc3e6", label="app: ORM, Jinja, ASGI (median)")
    ax.scatter(p95, y, marker="|", s=160, color="#333333", label="p95", zorder=3)
    for i, m in enumerate(median):
        ax.annotate(f"{m:.1f} ms", (max(p95[i], m), i), xytext=(6, -4), textcoords="offset points")
    ax.axvline(SLOW_MS, color="#c0392b", linestyle="--", linewidth=1, label=f"{SLOW_MS:.0f} ms")
    ax.set_yticks(y, names)
    ax.set_xlim(0, max(float(p95.max()), SLOW_MS) * 1.18)
    ax.set_xlabel("ms per request (full page through the app)")
    ax.set_title(
        f"Review console pages, {result['cases']:,} cases in PostgreSQL "
        f"({result['repeat']} requests each)"
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'page':<28}{'median':>9}{'p95':>9}{'db':>9}{'rows':>6}  plan (slowest statement)"]
    for name, page in result["pages"].items():
        plans = result["explain"].get(name, [])
        worst = max(plans, key=lambda p: p["execution_ms"], default=None)
        shape = "" if worst is None else worst["plan"]
        flag = " SLOW" if page["median_ms"] > SLOW_MS else ""
        rows = "-" if page["rows"] is None else str(page["rows"])
        lines.append(
            f"{name:<28}{page['median_ms']:>9.1f}{page['p95_ms']:>9.1f}"
            f"{page['db_median_ms']:>9.1f}{rows:>6}  {shape[:110]}{flag}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--database-url", default=os.environ.get("REVIEW_BENCH_DATABASE_URL"))
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument(
        "--card-activity", type=int, default=2_000_000, help="decision rows (0: none)"
    )
    parser.add_argument("--reuse", action="store_true", help="keep a loaded database")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--depth", type=int, default=50, help="queue page followed to")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot", type=Path, default=Path("bench/results/review_queue.png"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/review_queue.json"))
    args = parser.parse_args()

    url = _pick_url(args.database_url)
    _say(f"database: {url}")
    loaded = _prepare_database(url, reuse=args.reuse)
    engine = make_engine(url)
    upgrade_schema(engine)
    load: dict[str, Any] = {"load_seconds": None, "reused": True}
    if not loaded:
        _say(f"loading {args.cases:,} cases and {args.card_activity:,} card decisions")
        load = _load(url, args.cases, args.card_activity, args.seed)
    sizes = _sizes(url)
    _say(f"data: {json.dumps(sizes)}")

    tap = SqlTap()
    tap.attach(engine)
    sessions = make_sessions(engine)
    config = ConsoleConfig()
    token = _login(sessions, config)
    targets = _targets(sessions)
    app = create_app(sessions, config=config)
    pages: dict[str, dict[str, Any]] = {}
    explain: dict[str, list[dict[str, Any]]] = {}
    with TestClient(app, cookies={SESSION_COOKIE: token}) as client:
        for name, path in _pages(client, targets, args.depth).items():
            pages[name] = _time_page(client, tap, path, args.warmup, args.repeat)
            with tap.record() as statements:
                _get(client, path)
            explain[name] = _explain(engine, statements)
            _say(
                f"  {name:<28} median {pages[name]['median_ms']:8.1f} ms   "
                f"p95 {pages[name]['p95_ms']:8.1f} ms   db {pages[name]['db_median_ms']:7.1f} ms"
            )
    engine.dispose()

    result: dict[str, Any] = {
        "cases": sizes["cases"],
        "card_activity": sizes["card_activity"],
        "load_seconds": load["load_seconds"],
        "load": load,
        "data": sizes,
        "repeat": args.repeat,
        "warmup": args.warmup,
        "machine": {"cores": os.cpu_count()},
        "pages": pages,
        "explain": {
            name: [{k: v for k, v in p.items() if k not in ("text", "sql")} for p in plans]
            for name, plans in explain.items()
        },
    }
    _say("")
    _say(_table(result))
    for name in ("queue open oldest", "queue sort=score"):
        for plan in explain[name]:
            _say(
                f"\nEXPLAIN {name} (index scan: {plan['index_scan']}, rows removed by filter: "
                f"{plan['rows_removed_by_filter']:,}):\n{plan['text']}"
            )
    for name, page in pages.items():
        if page["median_ms"] > SLOW_MS:
            for plan in explain[name]:
                _say(f"\nSLOW {name}: {plan['sql']}\n{plan['text']}")
    _plot(result, args.plot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.json:
        print(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
