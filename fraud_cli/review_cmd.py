"""``fraud review``: the analyst console and its accounts."""

from __future__ import annotations

import contextlib
import errno
import secrets
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fraud_cli.brokers import answered, stream_broker
from fraud_cli.settings import ReviewSettings

if TYPE_CHECKING:  # the console's web stack is imported only by the commands that use it
    from sqlalchemy import Engine

    from review import ConsoleService

__all__ = ["demo_console", "review", "serve_demo_console"]


@click.group()
def review() -> None:
    """The analyst review console: alerts in, verdicts out as labels."""


def refuse_unusable_listen_address(
    host: str, port: int, option: str = "--port (FRAUD_REVIEW_PORT)"
) -> None:
    """Before start-up, not after: uvicorn says only "Name or service not known", or
    "address already in use" once the console is up (a demo ran in full first)."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise click.ClickException(
            f"FRAUD_REVIEW_HOST / --host {host!r}: {exc.strerror}; give an address of this "
            "machine, e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    for family, kind, proto, _, address in addresses:  # uvicorn binds every one
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    why = f"another server holds the port; stop it, or give another {option}"
                else:  # not this machine's address, or a port below 1024 without privilege
                    why = "give an address of this machine and a port this user may open"
                where = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
                raise click.ClickException(
                    f"cannot listen on {where}:{port} ({exc.strerror}): {why}"
                ) from None


@review.command("serve")
@click.option("--host", default=None, help="Bind address [FRAUD_REVIEW_HOST, 127.0.0.1].")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="HTTP port [FRAUD_REVIEW_PORT, 8080].",
)
@click.option("--database-url", default=None, help="[FRAUD_REVIEW_DATABASE_URL, SQLite file].")
def serve(host: str | None, port: int | None, database_url: str | None) -> None:
    """Serve the console, consuming fraud.alerts and producing fraud.labels."""
    from review import ConsoleConfig, ConsoleService, ServiceConfig
    from review.auth import LoginPolicy
    from stream.settings import TopicNames

    settings = ReviewSettings()
    topics = TopicNames(settings.topic_prefix)
    bootstrap = stream_broker(
        settings.kafka_bootstrap,
        "fraud review serve",
        "`fraud demo --review` runs the console on the demo's own broker",
    )
    host, port = host or settings.review_host, port or settings.review_port
    refuse_unusable_listen_address(host, port)
    config = ServiceConfig(
        database_url=database_url or settings.review_database_url,
        bootstrap=bootstrap,
        alerts_topic=topics.alerts,
        decisions_topic=topics.decisions if settings.review_card_activity else None,
        labels_topic=topics.labels,
        group_id=topics.review_group,
        host=host,
        port=port,
        console=ConsoleConfig(
            secure_cookies=settings.review_secure_cookies,
            policy=LoginPolicy(session_ttl=timedelta(hours=settings.review_session_hours)),
        ),
        activity_retention=timedelta(days=settings.review_activity_days),
        connect_timeout_s=settings.kafka_connect_timeout_s,
    )
    service = answered(bootstrap, settings.kafka_connect_timeout_s, lambda: ConsoleService(config))
    click.echo(f"review console on http://{service.config.host}:{service.config.port}", err=True)
    service.run()


def demo_console(*, bootstrap: str, workdir: Path, port: int = 8080) -> tuple[ConsoleService, str]:
    """The console on the demo's broker, with a throwaway lead account; returns its password."""
    from review import ConsoleService, ServiceConfig
    from review.auth import add_user
    from stream.settings import TopicNames

    topics = TopicNames()
    database = workdir / "review.db"
    # each demo has a new broker, so a kept --workdir's cases are of another run: start
    # empty (a second run failed at the end on the demo account it had made)
    for path in (database, *database.parent.glob(f"{database.name}-*")):
        path.unlink(missing_ok=True)
    service = ConsoleService(
        ServiceConfig(
            database_url=f"sqlite:///{database}",
            bootstrap=bootstrap,
            alerts_topic=topics.alerts,
            decisions_topic=topics.decisions,
            labels_topic=topics.labels,
            group_id=topics.review_group,
            port=port,
        )
    )
    password = secrets.token_urlsafe(12)
    with service.sessions.begin() as session:
        add_user(session, username="demo", password=password, role="lead", now=datetime.now(UTC))
    return service, password


def serve_demo_console(*, bootstrap: str, workdir: Path, port: int = 8080) -> None:
    """``fraud demo --review``: serve :func:`demo_console` until Ctrl-C."""
    service, password = demo_console(bootstrap=bootstrap, workdir=workdir, port=port)
    click.echo(
        f"review console on http://127.0.0.1:{port}: log in as 'demo' with password "
        f"{password}  (Ctrl-C stops the console, the worker and the broker)",
        err=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        service.run()


def _migrated_engine(database_url: str | None) -> Engine:
    """The console's database (the flag, else FRAUD_REVIEW_DATABASE_URL), schema current."""
    from review import make_engine, upgrade_schema

    engine = make_engine(database_url or ReviewSettings().review_database_url)
    upgrade_schema(engine)
    return engine


@review.group()
def users() -> None:
    """Analyst and lead accounts."""


def _username(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Checked before the password is asked for, twice, in vain."""
    from review.auth import check_username
    from review.errors import UserError

    try:
        check_username(value)
    except UserError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


@users.command("add")
@click.argument("username", callback=_username)
@click.option(
    "--role", type=click.Choice(["analyst", "lead"]), default="analyst", show_default=True
)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for when not given (stdin works too); at least 12 characters.",
)
@click.option("--database-url", default=None, help="[FRAUD_REVIEW_DATABASE_URL, SQLite file].")
def users_add(username: str, role: str, password: str, database_url: str | None) -> None:
    """Create an account (the password is stored as an argon2id hash)."""
    from review import make_sessions
    from review.auth import add_user
    from review.errors import UserError

    engine = _migrated_engine(database_url)
    try:
        with make_sessions(engine).begin() as session:
            add_user(
                session, username=username, password=password, role=role, now=datetime.now(UTC)
            )
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {username!r} added with role {role}")


@users.command("deactivate")
@click.argument("username")
@click.option("--database-url", default=None, help="[FRAUD_REVIEW_DATABASE_URL, SQLite file].")
def users_deactivate(username: str, database_url: str | None) -> None:
    """Stop an account from logging in and end its sessions (its audit trail stays)."""
    from review import make_sessions
    from review.auth import deactivate_user
    from review.errors import UserError

    engine = _migrated_engine(database_url)
    try:
        with make_sessions(engine).begin() as session:
            deactivate_user(session, username=username, now=datetime.now(UTC))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {username!r} deactivated")


@users.command("list")
@click.option("--database-url", default=None, help="[FRAUD_REVIEW_DATABASE_URL, SQLite file].")
def users_list(database_url: str | None) -> None:
    """Accounts, their roles and whether they are active."""
    from sqlalchemy import select

    from review import make_sessions
    from review.schema import User

    engine = _migrated_engine(database_url)
    with make_sessions(engine)() as session:
        for user in session.scalars(select(User).order_by(User.username)):
            state = "active" if user.active else "deactivated"
            click.echo(f"{user.username}\t{user.role}\t{state}")


@review.command("upgrade-db")
@click.option("--database-url", default=None, help="[FRAUD_REVIEW_DATABASE_URL, SQLite file].")
def upgrade_db(database_url: str | None) -> None:
    """Apply the schema migrations (serve does this too)."""
    _migrated_engine(database_url)
    click.echo("schema is current")
