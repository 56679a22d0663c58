"""The console's tables. The migrations in ``review/migrations`` create exactly these.

Times are stored as UTC: PostgreSQL keeps the zone, SQLite gets naive UTC, and both come back
as aware ``datetime`` objects so the code never compares naive with aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditEntry",
    "Base",
    "CardActivity",
    "Case",
    "CaseStatus",
    "IngestError",
    "LoginAttempt",
    "Role",
    "UTCDateTime",
    "User",
    "UserSession",
    "Verdict",
    "VerdictKind",
]

CaseStatus = str  # "open" | "escalated" | "fraud" | "legit"
VerdictKind = str  # "fraud" | "legit" | "escalate"
Role = str  # "analyst" | "lead"

# 64-bit ids on PostgreSQL (1M+ cases), SQLite's rowid alias where autoincrement needs INTEGER
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Case(Base):
    """One flagged transaction (from ``fraud.alerts``), and where its review stands."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(128), unique=True)
    card_id: Mapped[str] = mapped_column(String(128))
    merchant_id: Mapped[str] = mapped_column(String(128))
    amount: Mapped[float] = mapped_column(Float)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    score: Mapped[float | None] = mapped_column(Float)
    # score, or -1 when the worker decided degraded without one: a NOT NULL key for keyset pages
    sort_score: Mapped[float] = mapped_column(Float)
    decision: Mapped[str] = mapped_column(String(16))
    reason_codes: Mapped[list[str]] = mapped_column(JSON)
    rule_hits: Mapped[list[str]] = mapped_column(JSON)
    model_version: Mapped[int | None] = mapped_column(Integer)
    feature_set_version: Mapped[str] = mapped_column(String(64))
    degraded: Mapped[bool] = mapped_column(Boolean)
    alerted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[CaseStatus] = mapped_column(String(16), default="open")
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    review_seconds: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        # one index per queue sort, led by status (the queue's usual filter), id breaks ties
        Index("ix_cases_status_alerted", "status", "alerted_at", "id"),
        Index("ix_cases_status_score", "status", "sort_score", "id"),
        Index("ix_cases_status_amount", "status", "amount", "id"),
        # the default page (open, oldest first): the planner otherwise picks ix_cases_alerted
        Index(
            "ix_cases_open_alerted",
            "alerted_at",
            "id",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        # covers the dashboard's per-day counts without touching the table
        Index(
            "ix_cases_alerted",
            "alerted_at",
            "id",
            postgresql_include=["status", "model_version", "review_seconds"],
        ),
        Index("ix_cases_card", "card_id", "event_time"),
        Index("ix_cases_merchant", "merchant_id", "status", "alerted_at", "id"),
    )


class CardActivity(Base):
    """Every decision of the stream (``fraud.decisions``), kept for the case page's card view."""

    __tablename__ = "card_activity"

    transaction_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    card_id: Mapped[str] = mapped_column(String(128))
    merchant_id: Mapped[str] = mapped_column(String(128))
    amount: Mapped[float] = mapped_column(Float)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    decision: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_card_activity_card", "card_id", "event_time"),
        Index("ix_card_activity_time", "event_time"),
    )


class Verdict(Base):
    """An analyst's action on a case. Fraud/legit verdicts are labels: ``label_sent_at`` is set
    once ``fraud.labels`` has acknowledged them (an outbox, so no label is lost)."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    transaction_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[VerdictKind] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text)
    analyst: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    label_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_verdicts_case", "case_id", "created_at"),
        Index("ix_verdicts_unsent", "label_sent_at", "id"),
    )


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserSession(Base):
    """A login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginAttempt(Base):
    """Every login attempt, for the lockout and the audit of who tried what."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    ok: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_login_attempts_user", "username", "at"),
        Index("ix_login_attempts_ip", "client_ip", "at"),
    )


class AuditEntry(Base):
    """Append-only: database triggers (see the migration) refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(160))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_log_at", "at"),)


class IngestError(Base):
    """An alert or decision record the console could not read: where it was, and why."""

    __tablename__ = "ingest_errors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(200))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
