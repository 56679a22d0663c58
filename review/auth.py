"""Accounts, logins with a lockout, and server-side sessions with a CSRF token each.

Passwords are argon2id hashes. A session cookie holds 256 random bits; the database keeps
only their SHA-256, so a leaked table opens no session.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from feature_store.labels import HISTORY_ANALYSTS
from feature_store.schema import looks_like_pan, redact_pans
from review.audit import record_audit
from review.errors import UserError
from review.schema import LoginAttempt, User, UserSession

__all__ = [
    "ROLES",
    "LoginFailed",
    "LoginPolicy",
    "LoginThrottled",
    "add_user",
    "authenticate",
    "check_username",
    "close_session",
    "deactivate_user",
    "open_session",
    "resolve_session",
]

ROLES = ("analyst", "lead")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12

_hasher = PasswordHasher()
# verified against when the user does not exist, so both cases take the same time
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class LoginFailed(Exception):
    """Wrong user name or password (deliberately not saying which)."""


class LoginThrottled(Exception):
    """Too many failed attempts for this account or from this address."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_s}s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5  # per account, within the window, since its last success
    max_failures_per_ip: int = 20
    window: timedelta = timedelta(minutes=15)
    session_ttl: timedelta = timedelta(hours=8)  # one shift


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: str) -> None:
    """Refuse a name no account may have (:class:`UserError` saying why)."""
    if not _USERNAME.match(username):
        raise UserError(
            f"user name {redact_pans(username)!r}: use 2-64 lowercase letters, digits, "
            "'.', '_' or '-'"
        )
    if username in HISTORY_ANALYSTS:  # the archive's verdicts written from a history
        raise UserError(f"user name {username!r} is reserved; pick another name")
    if looks_like_pan(username):  # it goes into every label's analyst field, and the audit
        raise UserError(
            f"user name {redact_pans(username)!r} holds a card number; pick another name"
        )


def add_user(session: Session, *, username: str, password: str, role: str, now: datetime) -> User:
    check_username(username)
    if role not in ROLES:
        raise UserError(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password has {len(password)} characters; use at least {MIN_PASSWORD}")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} exists already; pick another name")
    user = User(
        username=username,
        password_hash=_hasher.hash(password),
        role=role,
        active=True,
        created_at=now,
    )
    session.add(user)
    record_audit(session, actor="admin-cli", action="user.add", target=username, at=now, role=role)
    return user


def deactivate_user(session: Session, *, username: str, now: datetime) -> None:
    """The account can no longer log in, and its open sessions end now."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user {username!r}; `fraud review users list` shows who exists")
    user.active = False
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    record_audit(session, actor="admin-cli", action="user.deactivate", target=username, at=now)


def _failures(
    session: Session, column: InstrumentedAttribute[str], value: str, since: datetime
) -> int:
    last_ok = session.scalar(
        select(func.max(LoginAttempt.at)).where(column == value, LoginAttempt.ok.is_(True))
    )
    start = max(since, last_ok) if last_ok is not None else since
    count = session.scalar(
        select(func.count()).where(
            column == value, LoginAttempt.ok.is_(False), LoginAttempt.at > start
        )
    )
    return int(count or 0)


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    client_ip: str,
    now: datetime,
    policy: LoginPolicy,
) -> User:
    """The user, or :class:`LoginFailed` / :class:`LoginThrottled`. Every attempt is kept."""
    since = now - policy.window
    if (
        _failures(session, LoginAttempt.username, username, since) >= policy.max_failures
        or _failures(session, LoginAttempt.client_ip, client_ip, since)
        >= policy.max_failures_per_ip
    ):
        record_audit(session, actor=username, action="login.throttled", target=client_ip, at=now)
        raise LoginThrottled(int(policy.window.total_seconds()))
    user = session.scalar(select(User).where(User.username == username, User.active.is_(True)))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None
    except (VerificationError, InvalidHashError):
        ok = False
    session.add(LoginAttempt(username=username, client_ip=client_ip, at=now, ok=ok))
    if not ok or user is None:
        record_audit(session, actor=username, action="login.failed", target=client_ip, at=now)
        raise LoginFailed("wrong user name or password")
    record_audit(session, actor=username, action="login", target=client_ip, at=now)
    return user


def open_session(session: Session, user: User, *, now: datetime, policy: LoginPolicy) -> str:
    """A new session; returns the cookie token (the only place it exists in clear)."""
    token = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + policy.session_ttl,
        )
    )
    # drop this user's expired sessions while we are here: the table stays small
    session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at < now)
    )
    return token


def resolve_session(
    session: Session, token: str | None, *, now: datetime
) -> tuple[User, UserSession] | None:
    if not token:
        return None
    row = session.execute(
        select(User, UserSession)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == _token_hash(token), User.active.is_(True))
    ).first()
    if row is None or row[1].expires_at <= now:
        return None
    return row[0], row[1]


def close_session(session: Session, token: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == _token_hash(token)))
