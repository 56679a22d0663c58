"""The console's pages: login, queue, case, dashboard, audit. Server-rendered, no CDN.

Every POST carries the session's CSRF token; every page but ``/login`` and ``/healthz`` needs
a session. Handlers are plain functions (FastAPI runs them in its thread pool) over the
synchronous SQLAlchemy session.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from feature_store.schema import redact_pans
from review.audit import recent_audit, record_audit
from review.auth import (
    LoginFailed,
    LoginPolicy,
    LoginThrottled,
    authenticate,
    close_session,
    open_session,
    resolve_session,
)
from review.cases import (
    SORTS,
    STATUSES,
    VERDICTS,
    InvalidCursor,
    QueueFilter,
    apply_verdict,
    case_context,
    correct_verdict,
    queue_page,
)
from review.dashboard import dashboard_stats
from review.errors import BadInput, CaseNotFound, NotAllowed
from review.feedback import LabelRelay
from review.schema import User, UserSession, Verdict

__all__ = ["ConsoleConfig", "create_app"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
SESSION_COOKIE = "fraud_session"
LOGIN_CSRF_COOKIE = "fraud_login_csrf"
_CONTRIBUTION = re.compile(r"\(([+-]?\d+(?:\.\d+)?)\)\s*$")
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class ConsoleConfig:
    secure_cookies: bool = False  # True behind HTTPS: cookies never travel in clear
    policy: LoginPolicy = field(default_factory=LoginPolicy)
    page_size: int = 50


class _LoginRequired(Exception):
    pass


class _Forbidden(Exception):
    pass


class _BadRequest(Exception):
    pass


# each refusal's status and page title; the exception's message says what and how to fix
_HTTP_TITLES = {400: "Bad request", 404: "Not found", 405: "Not allowed", 413: "Too large"}


def _invalid_value(error: Any) -> str:
    """One refused value, by its field's name (not a list index) and quoted, shortened
    and without card numbers."""
    field = next((str(p) for p in reversed(error["loc"]) if isinstance(p, str)), "value")
    raw = error.get("input", "")
    # redacted before repr(), whose escapes (\t, \xa0) would split a card number's digits
    value = redact_pans(repr(redact_pans(raw) if isinstance(raw, str) else raw))
    value = value if len(value) <= 40 else f"{value[:37]}..."
    return f"the request's {field} {value} is not valid"


_ERROR_PAGES: dict[type[Exception], tuple[int, str]] = {
    _Forbidden: (403, "Not allowed"),
    NotAllowed: (409, "Not possible"),
    CaseNotFound: (404, "No such case"),
    _BadRequest: (400, "Bad request"),
    BadInput: (400, "Bad request"),
    InvalidCursor: (400, "Bad request"),
}


@dataclass(frozen=True)
class _Principal:
    user: User
    login: UserSession


def _waited(since: datetime, now: datetime) -> str:
    return _duration((now - since).total_seconds())


def _duration(total_s: float) -> str:
    seconds = max(int(total_s), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def _reasons(reasons: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Reason codes that end with their SHAP contribution, '(+1.23)', as bars scaled to the
    largest; the others (the threshold the score passed) as notes, not bars of 0."""
    bars: list[dict[str, Any]] = []
    notes: list[str] = []
    for reason in reasons:
        if match := _CONTRIBUTION.search(reason):
            bars.append({"label": reason[: match.start()].strip(), "value": float(match[1])})
        else:
            notes.append(reason)
    top = max((abs(b["value"]) for b in bars), default=0.0) or 1.0
    for b in bars:
        b["width"] = round(300 * abs(b["value"]) / top)
    return bars, notes


def _number(params: dict[str, str], name: str) -> float | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise _BadRequest(
            f"{name}={raw!r} is not a number; leave it empty or use e.g. 0.8"
        ) from None


def _day(params: dict[str, str], name: str, *, end: bool) -> datetime | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise _BadRequest(f"{name}={raw!r} is not a date; use YYYY-MM-DD") from None
    start = datetime.combine(day, time(), UTC)
    return start + timedelta(days=1) if end else start


def _queue_filter(params: dict[str, str]) -> QueueFilter:
    status = params.get("status", "open")
    if status not in (*STATUSES, "all"):
        raise _BadRequest(f"status={status!r}: choose one of {', '.join(STATUSES)} or all")
    decision = params.get("decision") or None
    if decision not in (None, "review", "decline"):
        raise _BadRequest(f"decision={decision!r}: choose review or decline")
    return QueueFilter(
        status=None if status == "all" else status,
        decision=decision,
        score_min=_number(params, "score_min"),
        score_max=_number(params, "score_max"),
        amount_min=_number(params, "amount_min"),
        amount_max=_number(params, "amount_max"),
        merchant_id=params.get("merchant", "").strip() or None,
        card_id=params.get("card", "").strip() or None,
        since=_day(params, "since", end=False),
        until=_day(params, "until", end=True),
    )


def create_app(
    sessions: sessionmaker[Session],
    *,
    config: ConsoleConfig,
    relay: LabelRelay | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    app = FastAPI(title="Fraud review console", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=_HERE / "templates")
    templates.env.globals["waited"] = _waited
    templates.env.globals["duration"] = _duration
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(_SECURITY_HEADERS)
        return response

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def principal(request: Request, session: Session) -> _Principal:
        found = resolve_session(session, request.cookies.get(SESSION_COOKIE), now=clock())
        if found is None:
            raise _LoginRequired
        return _Principal(user=found[0], login=found[1])

    def check_csrf(who: _Principal, token: str) -> None:
        if not token or not hmac.compare_digest(token, who.login.csrf_token):
            raise _Forbidden("the form's CSRF token is missing or wrong; reload the page")

    def require_lead(who: _Principal) -> None:
        if who.user.role != "lead":
            raise _Forbidden(f"{who.user.username} is an {who.user.role}; this needs a lead")

    @app.exception_handler(_LoginRequired)
    async def login_required(request: Request, _exc: _LoginRequired) -> Response:
        if request.method == "GET":
            return RedirectResponse("/login", status_code=303)
        return PlainTextResponse("log in first", status_code=401)

    async def error_page(request: Request, exc: Exception) -> Response:
        status, title = _ERROR_PAGES[type(exc)]
        return page(request, "error.html", status, title=title, message=str(exc))

    for error in _ERROR_PAGES:
        app.add_exception_handler(error, error_page)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """A path or form value of the wrong type (an edited link): the login page for a
        stranger, as for any page, and a 400 page, not FastAPI's JSON, for a user."""
        with sessions() as session:
            known = resolve_session(session, request.cookies.get(SESSION_COOKIE), now=clock())
        if known is None:
            return await login_required(request, _LoginRequired())
        message = "; ".join(_invalid_value(error) for error in exc.errors())
        message += "; go back and use the page's links"
        return page(request, "error.html", 400, title="Bad request", message=message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own refusals (a form field over its size limit: 400) as the
        console's error page, not FastAPI's JSON."""
        if exc.status_code >= 500 or request.url.path == "/healthz":
            return await http_exception_handler(request, exc)
        title = _HTTP_TITLES.get(exc.status_code, "Not possible")
        response = page(
            request, "error.html", exc.status_code, title=title, message=str(exc.detail)
        )
        response.headers.update(exc.headers or {})  # a 405's Allow
        return response

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(32)
        response: Response = page(request, "login.html", csrf=token, error=None)
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=config.secure_cookies,
        )
        return response

    @app.post("/login")
    def login(
        request: Request,
        username: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
    ) -> Response:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, csrf_token):
            raise _Forbidden("the login form's CSRF token is missing or wrong; reload the page")
        client_ip = request.client.host if request.client else "unknown"
        now = clock()
        with sessions.begin() as session:
            try:
                user = authenticate(
                    session,
                    username=username.strip().lower(),
                    password=password,
                    client_ip=client_ip,
                    now=now,
                    policy=config.policy,
                )
            except LoginThrottled as exc:
                response = page(request, "login.html", 429, csrf=cookie, error=str(exc))
                response.headers["Retry-After"] = str(exc.retry_after_s)
                return response
            except LoginFailed as exc:
                return page(request, "login.html", 401, csrf=cookie, error=str(exc))
            token = open_session(session, user, now=now, policy=config.policy)
        redirect = RedirectResponse("/queue", status_code=303)
        redirect.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(config.policy.session_ttl.total_seconds()),
            httponly=True,
            samesite="strict",
            secure=config.secure_cookies,
        )
        redirect.delete_cookie(LOGIN_CSRF_COOKIE)
        return redirect

    @app.post("/logout")
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        with sessions.begin() as session:
            who = principal(request, session)
            check_csrf(who, csrf_token)
            close_session(session, request.cookies.get(SESSION_COOKIE, ""))
            record_audit(session, actor=who.user.username, action="logout", target="-", at=clock())
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue(request: Request) -> Response:
        params = dict(request.query_params)
        queue_filter = _queue_filter(params)
        sort = params.get("sort", "oldest")
        with sessions() as session:
            who = principal(request, session)
            result = queue_page(
                session,
                queue_filter,
                sort=sort,
                cursor=params.get("cursor"),
                limit=config.page_size,
            )
        keep = {k: v for k, v in params.items() if k != "cursor" and v}
        return page(
            request,
            "queue.html",
            me=who,
            cases=result.cases,
            next_cursor=result.next_cursor,
            params=keep,
            statuses=STATUSES,
            sorts=list(SORTS),
            now=clock(),
        )

    @app.post("/queue/bulk")
    def bulk(
        request: Request,
        csrf_token: str = Form(""),
        action: str = Form(""),
        comment: str = Form(""),
        case_ids: Annotated[list[int] | None, Form()] = None,
    ) -> Response:
        with sessions.begin() as session:
            who = principal(request, session)
            check_csrf(who, csrf_token)
            if not case_ids:
                raise _BadRequest("select at least one case for a bulk action")
            apply_verdict(
                session, list(case_ids), kind=action, comment=comment, user=who.user, now=clock()
            )
        _publish(relay)
        return RedirectResponse(request.headers.get("referer") or "/queue", status_code=303)

    @app.get("/cases/{case_id}", response_class=HTMLResponse)
    def case_page(request: Request, case_id: int) -> Response:
        with sessions() as session:
            who = principal(request, session)
            context = case_context(session, case_id)
        bars, notes = _reasons(context.case.reason_codes)
        return page(
            request,
            "case.html",
            me=who,
            ctx=context,
            bars=bars,
            notes=notes,
            verdict_kinds=list(VERDICTS),
            now=clock(),
        )

    @app.post("/cases/{case_id}/verdict")
    def verdict(
        request: Request,
        case_id: int,
        csrf_token: str = Form(""),
        kind: str = Form(""),
        comment: str = Form(""),
        correction: bool = Form(False),  # a lead reversing a closed case
    ) -> Response:
        with sessions.begin() as session:
            who = principal(request, session)
            check_csrf(who, csrf_token)
            decide = correct_verdict if correction else _decide_one
            decide(session, case_id, kind=kind, comment=comment, user=who.user, now=clock())
        _publish(relay)
        return RedirectResponse(f"/cases/{case_id}", status_code=303)

    @app.get("/dashboard", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        with sessions() as session:
            who = principal(request, session)
            stats = dashboard_stats(session, now=clock())
        peak = max((d.alerts for d in stats.days), default=0) or 1
        return page(request, "dashboard.html", me=who, stats=stats, peak=peak)

    @app.get("/audit", response_class=HTMLResponse)
    def audit(request: Request) -> Response:
        with sessions() as session:
            who = principal(request, session)
            require_lead(who)
            entries = recent_audit(session)
            unsent = session.scalar(
                select(func.count())
                .select_from(Verdict)
                .where(Verdict.label_sent_at.is_(None), Verdict.kind.in_(("fraud", "legit")))
            )
        return page(request, "audit.html", me=who, entries=entries, unsent=unsent)

    return app


def _decide_one(
    session: Session, case_id: int, *, kind: str, comment: str, user: User, now: datetime
) -> None:
    apply_verdict(session, [case_id], kind=kind, comment=comment, user=user, now=now)


def _publish(relay: LabelRelay | None) -> None:
    """Hand the new labels to the relay's thread; the analyst does not wait on Kafka."""
    if relay is not None:
        relay.wake()
