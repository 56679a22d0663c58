"""Connecting to the console's database and bringing its schema up to date (Alembic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from review.errors import ReviewConfigError

__all__ = ["make_engine", "make_sessions", "upgrade_schema"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """SQLite (a file, created with its directory) or PostgreSQL (``postgresql+psycopg://``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # not echoed: a malformed URL may still hold a password
        raise ReviewConfigError(
            "FRAUD_REVIEW_DATABASE_URL is not a URL; use sqlite:///path.db or "
            "postgresql+psycopg://user@host/db"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is what we ship
        # UTC sessions: dates on the dashboard are UTC days, as on SQLite
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=8,
            connect_args={"options": "-c timezone=UTC"},
        )
    raise ReviewConfigError(
        f"FRAUD_REVIEW_DATABASE_URL={parsed.render_as_string(hide_password=True)!r}: only "
        "sqlite:/// and postgresql:// are supported"
    )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets the ingest thread write while pages read; FKs are off in SQLite by default
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Apply every migration up to ``revision``; a no-op when the schema is current."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        connection = engine.connect()
    except OperationalError as exc:  # the first connection: a wrong host, port or database
        reason = " ".join(str(exc.orig).split())  # one line: the driver's spans several
        raise ReviewConfigError(
            f"the review database {engine.url.render_as_string(hide_password=True)!r} did "
            f"not answer: {reason}; check FRAUD_REVIEW_DATABASE_URL and that it is up"
        ) from None
    with connection, connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
