"""What a lead looks at first: volume, how much was reviewed and how fast, how precise."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review.schema import Case

__all__ = ["DashboardStats", "DayCount", "dashboard_stats"]


@dataclass(frozen=True)
class DayCount:
    day: date
    alerts: int
    reviewed: int
    fraud: int


@dataclass(frozen=True)
class DashboardStats:
    days: list[DayCount]
    alerts: int
    reviewed: int
    open: int
    escalated: int
    confirmed_fraud: int
    median_review_s: float | None
    model_versions: dict[str, int]
    latest_model_version: int | None

    @property
    def reviewed_share(self) -> float | None:
        return self.reviewed / self.alerts if self.alerts else None

    @property
    def precision(self) -> float | None:
        """Confirmed fraud among reviewed alerts (escalated ones are not reviewed yet)."""
        return self.confirmed_fraud / self.reviewed if self.reviewed else None


def dashboard_stats(session: Session, *, now: datetime, days: int = 14) -> DashboardStats:
    since = now - timedelta(days=days)
    window = Case.alerted_at >= since
    reviewed = Case.status.in_(("fraud", "legit"))
    day = func.date(Case.alerted_at)  # UTC: SQLite stores UTC, PostgreSQL sessions run in UTC
    per_day = session.execute(
        select(
            day,
            func.count(),
            func.count().filter(reviewed),
            func.count().filter(Case.status == "fraud"),
        )
        .where(window)
        .group_by(day)
        .order_by(day)
    ).all()
    counts = [
        DayCount(
            day=d if isinstance(d, date) else date.fromisoformat(str(d)),
            alerts=a,
            reviewed=r,
            fraud=f,
        )
        for d, a, r, f in per_day
    ]
    statuses = dict(
        session.execute(select(Case.status, func.count()).where(window).group_by(Case.status)).all()
    )
    n_reviewed = statuses.get("fraud", 0) + statuses.get("legit", 0)
    median: float | None = None
    if n_reviewed:
        median = session.scalar(
            select(Case.review_seconds)
            .where(window, reviewed)
            .order_by(Case.review_seconds)
            .offset(n_reviewed // 2)
            .limit(1)
        )
    versions = session.execute(
        select(Case.model_version, func.count()).where(window).group_by(Case.model_version)
    ).all()
    latest = session.scalar(select(Case.model_version).order_by(Case.alerted_at.desc()).limit(1))
    return DashboardStats(
        days=counts,
        alerts=sum(statuses.values()),
        reviewed=n_reviewed,
        open=statuses.get("open", 0),
        escalated=statuses.get("escalated", 0),
        confirmed_fraud=statuses.get("fraud", 0),
        median_review_s=median,
        model_versions={"none" if v is None else str(v): n for v, n in versions},
        latest_model_version=latest,
    )
