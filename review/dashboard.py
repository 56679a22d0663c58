"""What a lead looks at first: volume, how much was reviewed and how fast, how precise."""

from __future__ import annotations

from collections import Counter, defaultdict
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
    # one pass over the window (an index-only scan on PostgreSQL); the rest is added up here
    groups = session.execute(
        select(day, Case.status, Case.model_version, func.count())
        .where(window)
        .group_by(day, Case.status, Case.model_version)
    ).all()
    by_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    statuses: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    for raw_day, status, version, n in groups:
        totals = by_day[raw_day if isinstance(raw_day, date) else date.fromisoformat(str(raw_day))]
        totals[0] += n
        totals[1] += n if status in ("fraud", "legit") else 0
        totals[2] += n if status == "fraud" else 0
        statuses[status] += n
        versions["none" if version is None else str(version)] += n
    counts = [
        DayCount(day=d, alerts=a, reviewed=r, fraud=f) for d, (a, r, f) in sorted(by_day.items())
    ]
    n_reviewed = statuses["fraud"] + statuses["legit"]
    median: float | None = None
    if n_reviewed:
        median = session.scalar(
            select(Case.review_seconds)
            .where(window, reviewed)
            .order_by(Case.review_seconds)
            .offset(n_reviewed // 2)
            .limit(1)
        )
    latest = session.scalar(select(Case.model_version).order_by(Case.alerted_at.desc()).limit(1))
    return DashboardStats(
        days=counts,
        alerts=sum(statuses.values()),
        reviewed=n_reviewed,
        open=statuses["open"],
        escalated=statuses["escalated"],
        confirmed_fraud=statuses["fraud"],
        median_review_s=median,
        model_versions=dict(versions),
        latest_model_version=latest,
    )
