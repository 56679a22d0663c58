"""The queue (filters, sorts, keyset pages), a case with its card's context, and verdicts."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from feature_store.schema import redact_pans
from review.audit import record_audit
from review.errors import BadInput, CaseNotFound, NotAllowed, ReviewError
from review.schema import CardActivity, Case, User, Verdict

__all__ = [
    "SORTS",
    "STATUSES",
    "VERDICTS",
    "CaseContext",
    "InvalidCursor",
    "QueueFilter",
    "QueuePage",
    "apply_verdict",
    "case_context",
    "correct_verdict",
    "queue_page",
]

STATUSES = ("open", "escalated", "fraud", "legit")
VERDICTS = {"fraud": "fraud", "legit": "legit", "escalate": "escalated"}  # verdict → status
CLOSED = ("fraud", "legit")  # the statuses a verdict that is a label leaves a case in
MAX_COMMENT = 2000
_MAX_ID = 2**63  # a BIGINT id

# sort name → (column, descending); ``id`` follows in the same direction and breaks ties
SORTS: dict[str, tuple[InstrumentedAttribute[Any], bool]] = {
    "oldest": (Case.alerted_at, False),
    "newest": (Case.alerted_at, True),
    "score": (Case.sort_score, True),
    "amount": (Case.amount, True),
}


class InvalidCursor(ReviewError):
    """A page cursor that this queue did not hand out (edited, or from another sort)."""


@dataclass(frozen=True)
class QueueFilter:
    status: str | None = "open"  # None = every status
    decision: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    amount_min: float | None = None
    amount_max: float | None = None
    merchant_id: str | None = None
    card_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, query: Select[Case]) -> Select[Case]:
        equal = (
            (Case.status, self.status),
            (Case.decision, self.decision),
            (Case.merchant_id, self.merchant_id),
            (Case.card_id, self.card_id),
        )
        at_least = ((Case.sort_score, self.score_min), (Case.amount, self.amount_min))
        at_most = ((Case.sort_score, self.score_max), (Case.amount, self.amount_max))
        conditions = [column == value for column, value in equal if value is not None]
        conditions += [column >= value for column, value in at_least if value is not None]
        conditions += [column <= value for column, value in at_most if value is not None]
        if self.since is not None:
            conditions.append(Case.alerted_at >= self.since)
        if self.until is not None:
            conditions.append(Case.alerted_at < self.until)
        return query.where(*conditions) if conditions else query


@dataclass(frozen=True)
class QueuePage:
    cases: list[Case]
    next_cursor: str | None


def _encode_cursor(sort: str, value: Any, case_id: int) -> str:
    plain = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([sort, plain, case_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(sort: str, cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, case_id = json.loads(raw)
        if cursor_sort != sort or not isinstance(case_id, int) or not 0 <= case_id < _MAX_ID:
            raise ValueError(cursor_sort)
        if sort in ("oldest", "newest"):
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:  # the column holds UTC times: no comparing with naive
                raise ValueError(value)
        elif not isinstance(value, int | float) or not abs(value) < 1e300:  # also NaN
            raise ValueError(value)
    except (ValueError, TypeError, OverflowError, json.JSONDecodeError):
        raise InvalidCursor(
            f"page cursor {cursor[:40]!r} does not belong to a {sort!r} queue; "
            "open the queue's first page again"
        ) from None
    return value, case_id


def queue_page(
    session: Session,
    queue: QueueFilter,
    *,
    sort: str = "oldest",
    cursor: str | None = None,
    limit: int = 50,
) -> QueuePage:
    """One page of cases. Keyset pagination: each page costs the same, however deep."""
    if sort not in SORTS:
        raise InvalidCursor(f"sort {sort!r}: choose one of {', '.join(SORTS)}")
    column, descending = SORTS[sort]
    query: Select[Case] = queue.where(select(Case))
    if cursor:
        value, case_id = _decode_cursor(sort, cursor)
        # (column, id) past the cursor. The leading range on ``column`` alone is what lets
        # PostgreSQL start the index scan at the cursor instead of filtering from the top.
        if descending:
            after = and_(column <= value, or_(column < value, Case.id < case_id))
        else:
            after = and_(column >= value, or_(column > value, Case.id > case_id))
        query = query.where(after)
    order = (column.desc(), Case.id.desc()) if descending else (column.asc(), Case.id.asc())
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(sort, getattr(rows[-1], column.key), rows[-1].id) if more else None
    return QueuePage(cases=rows, next_cursor=next_cursor)


@dataclass(frozen=True)
class CaseContext:
    case: Case
    verdicts: list[Verdict]
    card_activity: list[CardActivity]
    card_cases: list[Case]


def _get_case(session: Session, case_id: int, *, lock: bool = False) -> Case:
    # an id past the column's range (a hand-edited link) is no case, not a database error
    query = select(Case).where(Case.id == case_id)
    fits = 0 < case_id < _MAX_ID
    case = session.scalar(query.with_for_update() if lock else query) if fits else None
    if case is None:
        raise CaseNotFound(f"case {case_id} does not exist; open it from the queue")
    return case


def case_context(session: Session, case_id: int, *, recent: int = 20) -> CaseContext:
    case = _get_case(session, case_id)
    verdicts = session.scalars(
        select(Verdict).where(Verdict.case_id == case.id).order_by(Verdict.created_at)
    )
    activity = session.scalars(
        select(CardActivity)
        .where(CardActivity.card_id == case.card_id)
        .order_by(CardActivity.event_time.desc())
        .limit(recent)
    )
    card_cases = session.scalars(
        select(Case)
        .where(Case.card_id == case.card_id, Case.id != case.id)
        .order_by(Case.event_time.desc())
        .limit(recent)
    )
    return CaseContext(
        case=case,
        verdicts=list(verdicts),
        card_activity=list(activity),
        card_cases=list(card_cases),
    )


def _change_status(session: Session, case: Case, kind: str, *, user: User, now: datetime) -> None:
    """Move ``case`` on from the status it was read with, or refuse if someone else moved
    it meanwhile. SQLite takes no row lock on the read (FOR UPDATE is PostgreSQL's), so
    two analysts could both read a case open and both close it, with opposite labels:
    the UPDATE itself checks the status it read."""
    values: dict[str, Any] = {"status": VERDICTS[kind]}
    if kind != "escalate":
        values |= {
            "reviewed_by": user.username,
            "reviewed_at": now,
            "review_seconds": max((now - case.alerted_at).total_seconds(), 0.0),
        }
    changed = session.execute(
        update(Case).where(Case.id == case.id, Case.status == case.status).values(**values)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise NotAllowed(
            f"case {case.id} was decided by someone else meanwhile; reload it to see how"
        )


def _checked_comment(comment: str) -> str:
    # a card number typed into a comment would be shown on pages that show only tokens
    comment = redact_pans(comment.strip())
    if len(comment) > MAX_COMMENT:
        raise BadInput(f"a comment of {len(comment)} characters: at most {MAX_COMMENT}; shorten it")
    return comment


def _record(
    session: Session, case: Case, kind: str, comment: str, *, user: User, now: datetime, action: str
) -> Verdict:
    """Move the case on and keep the verdict (the label outbox) and its audit entry."""
    _change_status(session, case, kind, user=user, now=now)
    verdict = Verdict(
        case_id=case.id,
        transaction_id=case.transaction_id,
        kind=kind,
        comment=comment,
        analyst=user.username,
        created_at=now,
    )
    session.add(verdict)
    record_audit(
        session,
        actor=user.username,
        action=action,
        target=f"case {case.id}",
        at=now,
        transaction_id=case.transaction_id,
        comment=comment,
    )
    return verdict


def apply_verdict(
    session: Session,
    case_ids: Sequence[int],
    *,
    kind: str,
    comment: str,
    user: User,
    now: datetime,
) -> list[Verdict]:
    """Record a verdict on each case, all or none. Fraud/legit verdicts become labels.

    Analysts work open cases; escalated ones wait for a lead. A closed case stays closed
    (a lead corrects it with :func:`correct_verdict`).
    """
    if kind not in VERDICTS:
        raise BadInput(f"verdict {kind[:40]!r}: choose one of {', '.join(VERDICTS)}")
    comment = _checked_comment(comment)
    verdicts: list[Verdict] = []
    # one lock order for every request: two bulk actions over the same cases in other
    # orders deadlocked on PostgreSQL
    for case_id in sorted(set(case_ids)):
        case = _get_case(session, case_id, lock=True)
        if case.status in CLOSED:
            raise NotAllowed(
                f"case {case.id} was closed as {case.status} by {case.reviewed_by}; "
                "a lead can correct it"
            )
        if case.status == "escalated" and user.role != "lead":
            raise NotAllowed(f"case {case.id} is escalated: only a lead can decide it")
        if kind == "escalate" and case.status == "escalated":
            raise NotAllowed(f"case {case.id} is escalated already")
        verdicts.append(
            _record(session, case, kind, comment, user=user, now=now, action=f"verdict.{kind}")
        )
    return verdicts


def correct_verdict(
    session: Session, case_id: int, *, kind: str, comment: str, user: User, now: datetime
) -> Verdict:
    """A lead reverses a closed case's verdict, saying why. The new verdict is a label
    like any other, later than the first: training and the merchant-risk state take the
    latest verdict per transaction."""
    if kind not in CLOSED:
        raise BadInput(f"a correction {kind[:40]!r}: choose fraud or legit")
    comment = _checked_comment(comment)
    if not comment:
        raise BadInput("a correction needs a comment saying why")
    if user.role != "lead":
        raise NotAllowed(f"{user.username} is an {user.role}; only a lead corrects a verdict")
    case = _get_case(session, case_id, lock=True)
    if case.status not in CLOSED:
        raise NotAllowed(f"case {case.id} is {case.status}: decide it, there is nothing to correct")
    if case.status == kind:
        raise NotAllowed(f"case {case.id} is closed as {kind} already")
    return _record(session, case, kind, comment, user=user, now=now, action=f"correction.{kind}")
