"""Console fixtures: a migrated database (SQLite file, or a fresh PostgreSQL database on the
loopback server), two accounts, a controllable clock, and a logged-in HTTP client."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from review import ConsoleConfig, create_app, make_engine, make_sessions, upgrade_schema
from review.auth import add_user
from review.feedback import LabelRelay
from review.ingest import AlertIngestor
from stream.records import DecisionRecord

# the machine's PostgreSQL (trust auth on loopback); CI runs on the same kind of machine
POSTGRES_ADMIN = os.environ.get("REVIEW_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PASSWORD = "correct horse battery"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    try:
        with psycopg.connect(f"{POSTGRES_ADMIN}/postgres", connect_timeout=5):
            pass
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"no PostgreSQL at {POSTGRES_ADMIN} ({exc}); start it or set REVIEW_TEST_POSTGRES"
        )
    return POSTGRES_ADMIN


def _fresh_postgres(admin: str) -> Iterator[str]:
    name = f"review_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin}/{name}"
    finally:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'review.db'}"
    else:
        yield from _fresh_postgres(request.getfixturevalue("postgres_admin"))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    made = make_sessions(engine)
    with made.begin() as session:
        add_user(session, username="ana", password=PASSWORD, role="analyst", now=T0)
        add_user(session, username="lee", password=PASSWORD, role="lead", now=T0)
    return made


@dataclass
class Clock:
    now: datetime = T0 + timedelta(hours=1)

    def __call__(self) -> datetime:
        return self.now


def alert(n: int, **overrides: object) -> DecisionRecord:
    """A flagged decision as the stream writes it."""
    values: dict[str, object] = {
        "transaction_id": f"tx-{n:05d}",
        "card_id": f"card-{n % 7}",
        "merchant_id": f"m-{n % 5}",
        "amount": 10.0 * (n + 1),
        "event_time": (T0 + timedelta(minutes=n)).isoformat().replace("+00:00", "Z"),
        "score": round(0.5 + (n % 50) / 100, 4),
        "decision": "decline" if n % 3 == 0 else "review",
        "reason_codes": [
            "amount 7.4x the card's 30 days average (+1.20)",
            "first payment at this merchant (+0.40)",
            "score 0.500 >= review threshold 0.061",
        ],
        "model_version": 1 + n % 2,
        "feature_set_version": "core-v2",
        "degraded": False,
        "latency_ms": 3.0,
        "decided_at": (T0 + timedelta(minutes=n, seconds=1)).timestamp(),
    }
    values.update(overrides)
    return DecisionRecord(**values)  # type: ignore[arg-type]


@dataclass
class Console:
    client: TestClient
    sessions: sessionmaker[Session]
    clock: Clock
    ingestor: AlertIngestor
    csrf: str = ""
    pages: list[str] = field(default_factory=list)

    def login(self, username: str, password: str = PASSWORD) -> int:
        form = self.client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        response = self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        if response.status_code == 303:
            queue = self.client.get("/queue")
            found = re.search(r'name="csrf_token" value="([^"]+)"', queue.text)
            assert found is not None
            self.csrf = found.group(1)
        return response.status_code


def make_console(
    sessions: sessionmaker[Session], *, relay: LabelRelay | None = None, page_size: int = 50
) -> Console:
    clock = Clock()
    app = create_app(sessions, config=ConsoleConfig(page_size=page_size), relay=relay, clock=clock)
    return Console(
        client=TestClient(app), sessions=sessions, clock=clock, ingestor=AlertIngestor(sessions)
    )


@pytest.fixture
def console(sessions: sessionmaker[Session]) -> Console:
    return make_console(sessions)
