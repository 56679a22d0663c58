"""``fraud``: simulate, features, stream, and the end-to-end demo; ``train``, ``models``,
``review`` and ``archive`` live in their own command modules.

Environment and flags are read in these command modules and nowhere else; components
receive settings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from feature_store.schema import redact_pans
from fraud_cli.archive_cmd import archive
from fraud_cli.brokers import kafka_or_embedded as _kafka
from fraud_cli.logs import configure_logging, report_repeats_left_out
from fraud_cli.models_cmd import models
from fraud_cli.options import NonEmptyPath, columns_option
from fraud_cli.paths import (
    parquet_file_path,
    refuse_other_format,
    refuse_unusable_parquet_file,
    refuse_unwritable_parent,
)
from fraud_cli.review_cmd import review
from fraud_cli.settings import LiveSettings
from fraud_cli.train_cmd import train

__all__ = ["cli"]


class _FraudGroup(click.Group):
    """Errors that say what to fix end a command with their message, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from batch_training.errors import BatchTrainingError
        from feature_store.errors import FeatureStoreError
        from review.errors import ReviewConfigError
        from simulator.errors import SimulatorError
        from stream.errors import StreamError

        refusals = (
            BatchTrainingError,
            FeatureStoreError,
            ReviewConfigError,
            SimulatorError,
            StreamError,
            OSError,
        )
        try:
            return super().invoke(ctx)
        except refusals as exc:
            if isinstance(exc, BrokenPipeError):
                raise  # click ends quietly on a closed pipe (`fraud models list | head`)
            # a message may quote an input value (an id that is a card number): never echoed
            raise click.ClickException(redact_pans(str(exc))) from exc
        except ValidationError as exc:
            if not exc.title.endswith("Settings"):
                raise
            # a FRAUD_* variable the settings refuse
            raise click.ClickException(redact_pans(_bad_settings(exc))) from exc


# a refused value of these is not echoed: it may hold a password
_SECRET_HINTS = ("url", "password", "secret", "token", "key")


def _bad_settings(exc: ValidationError) -> str:
    """One line per refused variable: its name, the value (unless it may be a secret), why."""
    problems = []
    for error in exc.errors():
        name = "_".join(str(part) for part in error["loc"])
        value = "" if any(h in name for h in _SECRET_HINTS) else f"={error.get('input')!r}"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"FRAUD_{name.upper()}{value}: {message}")
    return "bad setting: " + "; ".join(problems)


@click.group(cls=_FraudGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Real-time fraud detection: simulate traffic, train models, score a stream."""
    configure_logging(logging.INFO if verbose else logging.WARNING)
    # however the command ends: the Kafka clients' records left out since each last showed
    ctx.call_on_close(report_repeats_left_out)


# --------------------------------------------------------------------------- simulate
@cli.group()
def simulate() -> None:
    """Generate payment traffic: labelled histories, or live events to Kafka."""


def _population(f: Any) -> Any:
    f = click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")(f)
    f = click.option("--merchants", type=click.IntRange(min=1), default=200, show_default=True)(f)
    return click.option("--cards", type=click.IntRange(min=1), default=2000, show_default=True)(f)


@simulate.command("history")
@_population
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day (UTC); default: DAYS days before today.",
)
@click.option(
    "--out",
    type=NonEmptyPath(path_type=Path),
    required=True,
    help="Parquet file, or the archive directory with --format archive.",
)
@click.option(
    "--format",
    "layout",
    type=click.Choice(["parquet", "archive"]),
    default="parquet",
    show_default=True,
    help="archive: start a `fraud archive` directory with it (once; a seeded one is left "
    "as it is), so retraining on the archive reaches back past what the stream saw.",
)
@click.option(
    "--force", is_flag=True, help="Replace an existing Parquet file at --out (not an archive)."
)
def simulate_history(
    cards: int,
    merchants: int,
    seed: int,
    days: int,
    start: datetime | None,
    out: Path,
    layout: str,
    force: bool,
) -> None:
    """Write a labelled history (is_fraud, fraud_scenario, label_time) to Parquet."""
    from feature_store.archive import is_archive, seed_archive
    from simulator import SimulationConfig, TrafficGenerator, write_history

    if layout == "archive" and force:
        raise click.UsageError("--force replaces a Parquet file; an archive is never replaced")
    if layout == "archive" and is_archive(out):
        # a restarted stack's one-shot: the archive already continues this history
        click.echo(f"{out} is an archive already; left as it is")
        return
    _refuse_to_overwrite(out, layout, force)  # before minutes of simulating, not after
    first = _history_start(start, days)
    generator = TrafficGenerator(SimulationConfig(cards=cards, merchants=merchants, seed=seed))
    with click.progressbar(length=days, label="simulating days", file=sys.stderr) as bar:
        frame = generator.history(start=first, days=days, progress=lambda done, _: bar.update(1))
    frauds = int(frame["is_fraud"].sum())
    if layout == "archive":
        seed_archive(frame, out)
        click.echo(f"seeded the archive {out} with {len(frame):,} transactions ({frauds:,} fraud)")
        return
    write_history(frame, out)
    click.echo(f"wrote {len(frame):,} transactions ({frauds:,} fraud) to {out}")


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _refuse_to_overwrite(out: Path, layout: str, force: bool) -> None:
    if out.is_symlink():  # the write renames over the link, not into what it names
        raise click.ClickException(f"{out} is a symbolic link; give the path it points to")
    # both are written beside --out, then renamed into place; missing parents are made
    refuse_unwritable_parent(out, "--out")
    if layout == "archive":
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise click.ClickException(
                f"{out} exists and is not an archive or an empty directory; choose another --out"
            )
    elif out.is_dir():
        raise click.ClickException(f"{out} is a directory; give --out a Parquet file's path")
    elif out.exists() and not force:  # it may be the only copy of a real history
        raise click.ClickException(f"{out} exists; give --force to replace it, or another --out")
    else:
        refuse_other_format(out, "--out", example="history")


_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


def _history_start(start: datetime | None, days: int) -> datetime:
    """The first day: a history is of past payments, as the default (ending yesterday)
    is; future ones would be trained on as if their labels were known, and an archive
    seeded with them refuses the stream's days."""
    today = _today()
    if start is None:  # --days is at most ten years: after 1990
        return today - timedelta(days=days)
    first = start.replace(tzinfo=UTC)
    last = first + timedelta(days=days - 1)
    if first < _EARLIEST or last >= today:
        latest = (today - timedelta(days=days)).date()
        raise click.ClickException(
            f"--start {first.date()} with --days {days} would end on {last.date()}; a history "
            f"lies between 1990 and yesterday: choose --start between 1990-01-01 and {latest}"
        )
    return first


@simulate.command("live")
@_population
@click.option("--rate", type=float, default=200.0, show_default=True, help="Events per second.")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option(
    "--invalid-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of deliberately malformed events (exercises the DLQ).",
)
def simulate_live(
    cards: int, merchants: int, seed: int, rate: float, duration: float, invalid_rate: float
) -> None:
    """Produce live transactions to the transactions topic, keyed by card_id.

    Event times follow the simulated clock of the population (ending about now), so
    per-card velocities stay realistic; the ground truth never leaves this process.
    """
    from kafka import KafkaProducer

    from simulator import SimulationConfig, TrafficGenerator, produce_live, replay_start
    from stream.settings import TopicNames
    from stream.topics import ensure_topics

    settings = LiveSettings()
    topics = TopicNames(settings.topic_prefix)
    generator = TrafficGenerator(SimulationConfig(cards=cards, merchants=merchants, seed=seed))
    start = replay_start(
        now=datetime.now(UTC),
        rate=rate,
        duration_s=duration,
        tx_per_day=generator.expected_tx_per_day,
    )
    with _kafka(settings.kafka_bootstrap) as bootstrap:
        ensure_topics(bootstrap, topics.all(), partitions=settings.partitions)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=2, acks=1, enable_idempotence=False
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stats = produce_live(
                producer=producer,
                topic=topics.transactions,
                events=generator.events(start=start),
                rate=rate,
                duration_s=duration,
                invalid_rate=invalid_rate,
                stop=stop,
            )
        finally:
            producer.close()
    click.echo(
        f"sent {stats.sent:,} events ({stats.invalid_sent:,} malformed) in {stats.seconds:.1f}s"
    )


# --------------------------------------------------------------------------- features
@cli.group()
def features() -> None:
    """The feature store: offline features to Parquet, and warm online state."""


def _feature_options(f: Any) -> Any:
    f = click.option(
        "--label-delay-days",
        type=click.IntRange(0, 3650),
        default=7,
        show_default=True,
        help="Days after which a fraud label is known, when the data has no label_time.",
    )(f)
    f = columns_option("Column layout of the history.")(f)
    f = click.option(
        "--feature-set",
        type=click.Choice(["core", "extended", "handbook"]),
        default="core",
        show_default=True,
    )(f)
    return click.option(
        "--history",
        type=NonEmptyPath(path_type=Path, exists=True),
        required=True,
        help="Parquet file or directory, or CSV.",
    )(f)


@features.command("build")
@_feature_options
@click.option(
    "--out",
    type=NonEmptyPath(),
    required=True,
    callback=parquet_file_path("features"),
    help="Parquet file.",
)
def features_build(
    history: Path, feature_set: str, columns: str, label_delay_days: int, out: Path
) -> None:
    """Compute every feature for every row (point in time correct) and write Parquet."""
    from feature_store import (
        compute_offline_features,
        feature_set_by_name,
        present_columns,
        read_history,
    )

    refuse_unusable_parquet_file(out, "--out", example="features", reads=history)  # before the work
    started = time.perf_counter()
    click.echo(f"reading {history} ...", err=True)
    frame = read_history(history, columns=columns)  # type: ignore[arg-type]
    chosen = feature_set_by_name(feature_set).available_for(present_columns(frame))
    click.echo(f"computing {len(chosen.names)} features for {len(frame):,} rows ...", err=True)
    values = compute_offline_features(chosen, frame, label_delay_s=label_delay_days * 86_400)
    id_column = "TRANSACTION_ID" if columns == "handbook" else "transaction_id"
    values.insert(0, id_column, frame["transaction_id"].to_numpy())
    out.parent.mkdir(parents=True, exist_ok=True)
    values.to_parquet(out, index=False)
    click.echo(
        f"wrote {len(values):,} rows x {len(chosen.names)} features ({chosen.label}) to {out} "
        f"in {time.perf_counter() - started:.1f}s"
    )


@features.command("materialize")
@_feature_options
def features_materialize(
    history: Path, feature_set: str, columns: str, label_delay_days: int
) -> None:
    """Replay a history (and its labels) into Redis, so the stream starts warm."""
    import asyncio

    from feature_store import feature_set_by_name, present_columns, read_history
    from feature_store.materialize import materialize_history
    from feature_store.online import RedisOnlineStore
    from fraud_cli.settings import FeatureStoreSettings

    settings = FeatureStoreSettings()
    if not settings.redis_url:
        raise click.UsageError(
            "set FRAUD_REDIS_URL: the in-memory store lives inside the worker "
            "(use FRAUD_WARM_HISTORY there instead)"
        )
    frame = read_history(history, columns=columns)  # type: ignore[arg-type]
    chosen = feature_set_by_name(feature_set).available_for(present_columns(frame))
    # a batch job: a busy server may take seconds per 1,024-event call, not a failure
    store = RedisOnlineStore(url=settings.redis_url, timeout_s=30.0)

    async def run() -> int:
        try:
            with click.progressbar(
                length=len(frame), label="materializing", file=sys.stderr
            ) as bar:
                done = [0]

                def advance(rows: int) -> None:
                    bar.update(rows - done[0])
                    done[0] = rows

                return await materialize_history(
                    frame,
                    feature_set=chosen,
                    store=store,
                    label_delay_s=label_delay_days * 86_400,
                    progress=advance,
                )
        finally:
            await store.close()

    started = time.perf_counter()
    rows = asyncio.run(run())
    click.echo(f"materialized {rows:,} rows in {time.perf_counter() - started:.1f}s")


# --------------------------------------------------------------------------- stream
@cli.command()
@click.option(
    "--registry",
    type=NonEmptyPath(path_type=Path),
    default=None,
    help="Registry directory [env FRAUD_REGISTRY_DIR].",
)
@click.option(
    "--warm-history",
    type=NonEmptyPath(path_type=Path),
    default=None,
    help="Replay this history into the online store first [env FRAUD_WARM_HISTORY].",
)
def stream(registry: Path | None, warm_history: Path | None) -> None:
    """Run the faust worker: transactions in, decisions / alerts / DLQ out."""
    from stream.app import run_worker
    from stream.settings import StreamSettings

    overrides: dict[str, Any] = {}
    if registry is not None:
        overrides["registry_dir"] = registry
    if warm_history is not None:
        overrides["warm_history"] = warm_history
    settings = StreamSettings(**overrides)
    with _kafka(settings.kafka_bootstrap) as bootstrap:
        run_worker(settings, bootstrap=bootstrap)


# --------------------------------------------------------------------------- demo
@cli.command()
@click.option(
    "--duration", type=float, default=20.0, show_default=True, help="Seconds of live traffic."
)
@click.option("--rate", type=float, default=300.0, show_default=True, help="Events per second.")
@click.option("--json", "as_json", is_flag=True, help="End with the summary as one JSON line.")
@click.option(
    "--review",
    is_flag=True,
    help="Then serve the review console with the demo's alerts, until Ctrl-C.",
)
@click.option(
    "--review-port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="The console's port on 127.0.0.1, with --review.",
)
@click.option(
    "--workdir",
    type=NonEmptyPath(path_type=Path),
    default=None,
    help="Keep history, registry and logs here (default: a temporary directory).",
)
def demo(
    duration: float,
    rate: float,
    as_json: bool,
    workdir: Path | None,
    review: bool,
    review_port: int,
) -> None:
    """The whole loop, no configuration: broker, history, training, worker, live traffic."""
    from fraud_cli.demo import DemoConfig, run_demo
    from fraud_cli.review_cmd import refuse_unusable_listen_address

    if review:  # before the demo, not after it (its login line named another's server)
        refuse_unusable_listen_address("127.0.0.1", review_port, "--review-port")
    started = time.perf_counter()

    def report(summary: dict[str, Any]) -> None:
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        click.echo(json.dumps(summary) if as_json else json.dumps(summary, indent=2))

    def serve_console(bootstrap: str, directory: Path, summary: dict[str, Any]) -> None:
        from fraud_cli.review_cmd import serve_demo_console

        report(summary)
        serve_demo_console(bootstrap=bootstrap, workdir=directory, port=review_port)

    summary = run_demo(
        DemoConfig(duration_s=duration, rate=rate, workdir=workdir),
        say=lambda msg: click.echo(msg, err=as_json),
        then=serve_console if review else None,
    )
    if not review:
        report(summary)
    if summary["lost"] != 0:
        raise SystemExit(1)


@cli.command()
@click.option("--port", type=int, default=9092, show_default=True)
def broker(port: int) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) in the foreground."""
    from embedded import EmbeddedBroker

    with EmbeddedBroker(port=port) as running:
        click.echo(f"embedded broker on {running.bootstrap}; Ctrl-C stops it")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


cli.add_command(train)
cli.add_command(models)
cli.add_command(review)
cli.add_command(archive)
