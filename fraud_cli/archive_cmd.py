"""``fraud archive``: the offline store's intake, from the stream's topics or a history."""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

import click

from fraud_cli.brokers import answered, stream_broker
from fraud_cli.options import NonEmptyPath, columns_option, positive_seconds
from fraud_cli.paths import refuse_unusable_directory
from fraud_cli.settings import ArchiveSettings, StreamTopicsSettings

__all__ = ["archive"]


@click.command()
@click.option("--out", type=NonEmptyPath(), default=None, help="[FRAUD_ARCHIVE_DIR, var/archive].")
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
    type=NonEmptyPath(path_type=Path, exists=True),
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

    out_dir = Path(out) if out else ArchiveSettings().archive_dir
    if backfill is not None:
        _backfill(backfill, columns, out_dir)
        return
    refuse_unusable_directory(out_dir, "--out")  # not at the first write, minutes later
    settings = StreamTopicsSettings()
    topics = TopicNames(settings.topic_prefix)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bootstrap = stream_broker(
        settings.kafka_bootstrap,
        "fraud archive",
        "set it to that Kafka (or try by hand with `fraud broker`)",
    )
    archiver = answered(
        bootstrap,
        settings.kafka_connect_timeout_s,
        lambda: TopicArchiver(
            bootstrap=bootstrap,
            transactions_topic=topics.transactions,
            labels_topic=topics.labels,
            group_id=topics.archive_group,
            out_dir=out_dir,
            flush_interval_s=flush_interval,
            connect_timeout_s=settings.kafka_connect_timeout_s,
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
        f"wrote {done.transactions:,} transaction{'s' * (done.transactions != 1)} and "
        f"{done.labels:,} fraud label{'s' * (done.labels != 1)} to {out}"
        + (": " + "; ".join(said) if said else "")
    )
