"""``fraud review`` (the analyst console) and ``fraud archive`` (the offline store's intake)."""

from __future__ import annotations

import contextlib
import errno
import json
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from fraud_cli.options import columns_option, positive_seconds
from fraud_cli.paths import refuse_unusable_directory
from fraud_cli.settings import ReviewSettings

if TYPE_CHECKING:  # the console's web stack is imported only by the commands that use it
    from sqlalchemy import Engine

    from review import ConsoleService

__all__ = ["archive", "demo_console", "review", "serve_demo_console"]


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


_T = TypeVar("_T")


def _answered(bootstrap: str, connect: Callable[[], _T]) -> _T:
    """``connect()``, or one line when its Kafka does not answer (kafka-python's bootstrap
    ended in an 80-line traceback after half a minute)."""
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    try:
        return connect()
    except (KafkaConnectionError, KafkaTimeoutError) as exc:
        raise click.ClickException(
            f"no Kafka broker answered at {bootstrap} ({type(exc).__name__}); start it, or "
            "correct FRAUD_KAFKA_BOOTSTRAP"
        ) from None


def _stream_broker(settings: ReviewSettings, command: str, hint: str) -> str:
    """The Kafka the stream writes to. Unlike the stream, these do not start an embedded
    broker: it would hold no alerts, and the verdicts or archive written to it are lost."""
    if settings.kafka_bootstrap is None:
        raise click.ClickException(
            f"{command} needs FRAUD_KAFKA_BOOTSTRAP, the Kafka the stream worker writes to; " + hint
        )
    return settings.kafka_bootstrap


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
    bootstrap = _stream_broker(
        settings,
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
    )
    service = _answered(bootstrap, lambda: ConsoleService(config))
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


@click.command()
@click.option("--out", type=click.Path(), default=None, help="[FRAUD_ARCHIVE_DIR, var/archive].")
@click.option(
    "--idle-exit",
    type=float,
    default=None,
    callback=positive_seconds,
    help="Stop after this many seconds without records (default: run until SIGTERM).",
)
@click.option(
    "--flush-interval",
    type=float,
    default=60.0,
    show_default=True,
    callback=positive_seconds,
    help="Seconds between writes: at most this much is written again after a crash.",
)
@click.option(
    "--backfill",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Instead: add what this labelled history (Parquet, CSV) holds and the archive "
    "lacks, by transaction id (e.g. the months before the archiver started), and exit.",
)
@columns_option("--backfill's column layout (handbook: the handbook's raw columns).")
def archive(
    out: str | None,
    idle_exit: float | None,
    flush_interval: float,
    backfill: Path | None,
    columns: str,
) -> None:
    """Archive transactions and fraud.labels as day-partitioned Parquet for retraining."""
    from feature_store.archive.archiver import TopicArchiver
    from stream.settings import TopicNames

    settings = ReviewSettings()
    out_dir = Path(out) if out else settings.archive_dir
    if backfill is not None:
        _backfill(backfill, columns, out_dir)
        return
    refuse_unusable_directory(out_dir, "--out")  # not at the first write, minutes later
    topics = TopicNames(settings.topic_prefix)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bootstrap = _stream_broker(
        settings, "fraud archive", "set it to that Kafka (or try by hand with `fraud broker`)"
    )
    archiver = _answered(
        bootstrap,
        lambda: TopicArchiver(
            bootstrap=bootstrap,
            transactions_topic=topics.transactions,
            labels_topic=topics.labels,
            group_id=topics.archive_group,
            out_dir=out_dir,
            flush_interval_s=flush_interval,
        ),
    )
    try:
        stats = archiver.run(stop=stop, idle_exit_s=idle_exit)
    except KeyboardInterrupt:
        stats = archiver.stats
    click.echo(
        json.dumps(
            {
                "transactions": stats.transactions,
                "labels": stats.labels,
                "skipped": stats.skipped,
                "files": stats.files,
            }
        )
    )


def _backfill(history: Path, columns: str, out: Path) -> None:
    from feature_store import read_history
    from feature_store.archive import backfill_archive
    from feature_store.archive.backfill import refuse_unusable_backfill_target
    from feature_store.schema import redact_pans

    refuse_unusable_backfill_target(out)  # before the read, not after it
    # SIGTERM as ^C: a seed then removes its half-written staging directory
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    click.echo(f"reading {redact_pans(str(history))} ...", err=True)
    frame = read_history(history, columns=columns)  # type: ignore[arg-type]
    done = backfill_archive(frame, out)

    def days(listed: tuple[date, ...]) -> str:
        """``listed`` as runs of consecutive days: 3 days (2026-11-13, 11-18 .. 11-19)."""
        if not listed:
            return "no days"
        runs: list[list[date]] = []
        for day in listed:
            if runs and day - runs[-1][-1] == timedelta(days=1):
                runs[-1].append(day)
            else:
                runs.append([day])
        spans = ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]} .. {r[-1]}" for r in runs)
        return f"{len(listed)} day{'s' if len(listed) > 1 else ''} ({spans})"

    said = []
    if done.added:
        said.append(f"added {days(done.added)}")
    if done.completed:
        said.append(f"completed {days(done.completed)} it held in part")
    if done.held:
        said.append(f"{days(done.held)} it held whole: their payments left as they were")
    if done.left:
        said.append(
            f"{days(done.left)} the archive holds from today (UTC) on "
            f"{'were' if len(done.left) > 1 else 'was'} left out: the archiver is writing "
            f"{'them' if len(done.left) > 1 else 'it'}; backfill again once "
            f"{'they have' if len(done.left) > 1 else 'it has'} ended"
        )
    click.echo(
        f"wrote {done.transactions:,} transactions and {done.labels:,} fraud labels to {out}"
        + (": " + "; ".join(said) if said else "")
    )
