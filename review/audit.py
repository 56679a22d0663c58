"""The audit trail: who did what, when. Rows are only ever added (triggers refuse changes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from review.schema import AuditEntry

__all__ = ["recent_audit", "record_audit"]


def record_audit(
    session: Session, *, actor: str, action: str, target: str, at: datetime, **detail: Any
) -> None:
    session.add(AuditEntry(at=at, actor=actor, action=action, target=target, detail=detail))


def recent_audit(session: Session, *, limit: int = 200) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(query))
