"""``fraud train``: once, or on a schedule; each run recorded in the run log."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fraud_cli.options import NonEmptyPath, check_duration, columns_option, parse_duration
from fraud_cli.output import progress_line, reader_may_leave
from fraud_cli.paths import (
    parquet_file_path,
    refuse_inside,
    refuse_unusable_directory,
    refuse_unusable_parquet_file,
)
from fraud_cli.settings import TrainerSettings
from fraud_cli.train_history import LoadedHistory, ReadSettings, read_for_run

if TYPE_CHECKING:  # the training stack is imported only when a command runs
    from batch_training.pipeline import PipelineOptions, TrainingRun
    from batch_training.train import Progress
    from batch_training.unchanged import UnchangedRuns

__all__ = ["train"]

log = logging.getLogger(__name__)


# windows in days: beyond ten years, date arithmetic overflows; bounds as usage errors,
# like every other bad option (the library's own checks quote its names, and seconds)
_WINDOW_DAYS = click.IntRange(1, 3650)
_GAP_DAYS = click.IntRange(0, 3650)


@click.command()
@click.option(
    "--history",
    type=NonEmptyPath(path_type=Path),
    default=None,
    help="Parquet file or directory (e.g. partitioned by day), or CSV [env FRAUD_HISTORY].",
)
@click.option(
    "--registry",
    type=NonEmptyPath(path_type=Path),
    default=None,
    help="Registry directory [env FRAUD_REGISTRY_DIR, default var/registry].",
)
@columns_option("The history's column names: this product's, or the fraud handbook's raw ones.")
@click.option(
    "--feature-set",
    type=click.Choice(["core", "extended", "handbook"]),
    default="core",
    show_default=True,
)
@click.option(
    "--train-start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First training day; default: the latest window whose test labels are complete "
    "(see --label-delay-days).",
)
@click.option(
    "--train-days",
    type=_WINDOW_DAYS,
    default=7,
    show_default=True,
    help="Days of the training window.",
)
@click.option(
    "--delay-days",
    type=_GAP_DAYS,
    default=7,
    show_default=True,
    help="Days between training and test windows: the labels' feedback delay (without "
    "label times, it also says when a fraud's card counts as known).",
)
@click.option(
    "--test-days", type=_WINDOW_DAYS, default=7, show_default=True, help="Days of the test window."
)
@click.option(
    "--folds",
    type=click.IntRange(1, 520),
    default=1,
    show_default=True,
    help="Prequential folds, each shifted back one test window.",
)
@click.option("--tune", is_flag=True, help="Search a small hyper-parameter grid (scored by AP).")
@click.option(
    "--label-delay-days",
    type=_GAP_DAYS,
    default=7,
    show_default=True,
    help="Days until a fraud label is known: when features see it, if the history has "
    "no label_time; without --train-start, the test window ends this many days before the "
    "history does, so its labels are complete.",
)
@click.option(
    "--seed", type=click.IntRange(0, 2**31 - 1), default=7, show_default=True
)  # XGBoost's seed is a C int
@click.option(
    "--review-fee", type=float, default=5.0, show_default=True, help="Cost of one review."
)
@click.option(
    "--decline-fee",
    type=float,
    default=25.0,
    show_default=True,
    help="Cost of declining a legitimate payment.",
)
@click.option(
    "--review-capacity",
    type=int,
    default=None,
    help="Most reviews the analysts can make a day: thresholds that would send more "
    "(on the validation slice) are not chosen. Default: no limit.",
)
@click.option(
    "--alert-rate",
    type=float,
    default=0.005,
    show_default=True,
    help="Share of the test payments alerted on (highest scores first) for recall_at_alert_rate.",
)
@click.option(
    "--cp-tolerance",
    type=float,
    default=0.01,
    show_default=True,
    help="How far card precision@100 may fall for a candidate to be promoted.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Refuse, before loading, a history holding more rows (about 0.5 GB of peak memory "
    "per million) [env FRAUD_MAX_HISTORY_ROWS, default 20,000,000].",
)
@click.option("--no-promote", is_flag=True, help="Register only; never move the champion.")
@click.option(
    "--report-dir",
    type=NonEmptyPath(path_type=Path),
    default=None,
    help="Default: <registry>/versions/<N>/report.",
)
@click.option(
    "--predictions-out",
    type=NonEmptyPath(),
    default=None,
    callback=parquet_file_path("predictions"),
    help="Write the test window's transaction_id and score to Parquet.",
)
@click.option(
    "--every",
    type=str,
    default=None,
    callback=check_duration,
    help=(
        "Retrain at this interval (e.g. 24h) on the latest window until SIGTERM; a tick "
        "with nothing new since the last run is skipped."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line.")
def train(every: str | None, **options: Any) -> None:
    """Train on a time split, evaluate honestly, register, and promote past the gate."""
    settings = TrainerSettings()
    history = options["history"] or settings.history
    if history is None:
        raise click.UsageError("give --history PATH (or set FRAUD_HISTORY)")
    registry_dir = options["registry"] or settings.registry_dir
    # before training, not after it (a run registers its version only once all is written)
    refuse_unusable_directory(registry_dir, "--registry")
    if (report_dir := options["report_dir"]) is not None:
        refuse_unusable_directory(report_dir, "--report-dir")
        # a day-partitioned history would not read with the report in it
        refuse_inside(
            report_dir, "--report-dir", {"the registry": registry_dir, "the history": history}
        )
    if (predictions := options["predictions_out"]) is not None:
        refuse_unusable_parquet_file(
            predictions, "--predictions-out", example="predictions", reads=history
        )
        refuse_inside(predictions, "--predictions-out", {"the registry": registry_dir})
    read = ReadSettings(options["columns"], options["max_rows"] or settings.max_history_rows)
    lock_path = registry_dir / ".train.lock"
    from batch_training.schedule import RunCancelled, run_every, stop_on_signals
    from feature_store.locking import exclusive, lock_holder

    if every is None:
        pipeline = _pipeline_options(options, options["train_start"])
        stop = threading.Event()
        with exclusive(lock_path) as mine, stop_on_signals(stop):
            if not mine:
                holder = lock_holder(lock_path, "another training run")
                raise click.ClickException(f"{holder} holds {lock_path}; wait for it to finish")
            try:
                _train_once(history, registry_dir, pipeline, read, options["as_json"], stop)
            except RunCancelled:  # a CronJob's pod stopped, or ^C
                raise click.ClickException(f"training run cancelled by {_CANCELLED}") from None
        return
    interval_s = parse_duration(every)
    if options["train_start"] is not None:
        raise click.UsageError("--every trains on the latest window each time: drop --train-start")
    scheduled = _pipeline_options(options, None)  # bad settings fail now, not every tick
    from batch_training.unchanged import UnchangedRuns

    stop, unchanged = threading.Event(), UnchangedRuns()
    run_every(
        interval_s,
        lambda: _train_once(
            history, registry_dir, scheduled, read, options["as_json"], stop, unchanged
        ),
        lock_path=lock_path,
        stop=stop,
    )


def _pipeline_options(o: dict[str, Any], train_start: datetime | None) -> PipelineOptions:
    """The pipeline's options from the command's; ``train_start`` None: the latest window."""
    from batch_training.metrics import CostModel
    from batch_training.pipeline import PipelineOptions
    from batch_training.train import TrainingConfig
    from feature_store import feature_set_by_name

    return PipelineOptions(
        feature_set=feature_set_by_name(o["feature_set"]),
        train_start=train_start,
        train_days=o["train_days"],
        delay_days=o["delay_days"],
        test_days=o["test_days"],
        folds=o["folds"],
        label_delay_s=o["label_delay_days"] * 86_400,
        training=TrainingConfig(
            seed=o["seed"],
            tune=o["tune"],
            alert_rate=o["alert_rate"],
            review_capacity=o["review_capacity"],
            cost=CostModel(review_fee=o["review_fee"], decline_fee=o["decline_fee"]),
        ),
        cp_tolerance=o["cp_tolerance"],
        promote=not o["no_promote"],
        report_dir=o["report_dir"],
        predictions_out=o["predictions_out"],
    )


# how a cancelled run is reported: the Error line, the JSON line and the run log alike
_CANCELLED = "a stop request; nothing was registered or promoted"


@contextlib.contextmanager
def _failure_as_json_line(enabled: bool) -> Iterator[None]:
    """With --json, a run that fails or is cancelled ends with a JSON line too, so a caller
    reading stdout's last line learns the outcome and why (stderr and the exit code say it
    as well)."""
    from batch_training.schedule import RunCancelled
    from feature_store.schema import redact_pans

    clock = time.perf_counter()
    try:
        yield
    except Exception as exc:
        if enabled:
            cancelled = isinstance(exc, RunCancelled)
            line = {
                "outcome": "cancelled" if cancelled else "failed",
                "model_version": _registered_version(exc),
                "promoted": False,
                "error": type(exc).__name__,
                "reason": _CANCELLED if cancelled else redact_pans(str(exc)),
                "seconds": round(time.perf_counter() - clock, 1),
            }
            with contextlib.suppress(OSError):  # a closed pipe: the run's error matters more
                click.echo(json.dumps(line))
        raise


@contextlib.contextmanager
def _recorded(registry_dir: Path) -> Iterator[Callable[..., None]]:
    """Record the run in the registry's run log however it ends; the body calls the
    yielded function with the record's fields (outcome, reason, version, metrics) once
    it completes."""
    from batch_training.run_log import RunLog, RunRecord
    from batch_training.schedule import RunCancelled

    started, clock = datetime.now(UTC).isoformat(timespec="seconds"), time.perf_counter()
    run_log = RunLog(registry_dir)
    try:
        if (killed := run_log.begin(started)) is not None:
            log.warning("the previous training run did not end: %s", killed.reason)
    except OSError as exc:  # the run matters more than its record
        log.warning("could not mark the run as in progress in %s: %s", registry_dir, exc)

    def record(**fields: Any) -> None:
        seconds = round(time.perf_counter() - clock, 1)
        try:
            run_log.append(RunRecord(started=started, seconds=seconds, **fields))
            run_log.end()
        except OSError as exc:  # the run's own outcome matters more than its record
            log.warning("could not record the run in %s: %s", registry_dir, exc)

    recorded = False

    def completed(**fields: Any) -> None:
        nonlocal recorded
        record(**fields)
        recorded = True  # what follows in the body may still fail: the run is done

    try:
        yield completed
    except RunCancelled:
        record(outcome="cancelled", reason=_CANCELLED)
        raise
    except Exception as exc:
        if not recorded:
            record(
                outcome="failed",
                reason=str(exc),
                error=type(exc).__name__,
                version=_registered_version(exc),
            )
        raise


def _registered_version(exc: Exception) -> int | None:
    """The version a failed run registered before it failed (its promotion), if any."""
    from batch_training.errors import PromotionFailedError

    return exc.version if isinstance(exc, PromotionFailedError) else None


@contextlib.contextmanager
def _progress_reporter(stages: int) -> Iterator[tuple[Progress, Progress]]:
    """Where a run is: on a terminal a bar (each stage a step, the latest detail beside
    it); in a log (cron, a pod, compose), where a bar draws only its label, a timestamped
    line per stage and per detail."""
    if not sys.stderr.isatty():
        yield progress_line, progress_line
        return
    with click.progressbar(
        length=stages, label="training", file=sys.stderr, item_show_func=lambda s: s
    ) as bar:

        def stage(name: str) -> None:
            bar.update(1, name)

        def detail(where: str) -> None:
            # beside the bar, which stays put: bar.update(0, where) would draw nothing
            bar.current_item = where
            bar.render_progress()

        yield stage, detail


def _stoppable(report: Progress, stop: threading.Event) -> Progress:
    """``report``, first ending the run (RunCancelled) once ``stop`` is set."""
    from batch_training.schedule import check_stop

    def checked(message: str) -> None:
        check_stop(stop)
        report(message)

    return checked


def _train_once(
    history_path: Path,
    registry_dir: Path,
    options: PipelineOptions,
    read: ReadSettings,
    as_json: bool,
    stop: threading.Event,
    unchanged: UnchangedRuns | None = None,
) -> None:
    """One run, recorded in the registry's run log; it ends at its next progress report
    once ``stop`` is set. With ``unchanged`` (a schedule), a run whose history and
    champion are as the last one left them is skipped."""
    from batch_training.pipeline import run_training
    from batch_training.registry import ModelRegistry

    started = time.perf_counter()
    with _failure_as_json_line(as_json), _recorded(registry_dir) as completed:
        registry = ModelRegistry(registry_dir)
        registry.champion_version()  # an unreadable pointer fails now, not after training
        history = read_for_run(history_path, options, read, registry)
        inputs = repeated = trained = None
        if unchanged is not None:
            inputs = unchanged.inputs(
                options,
                history.frame,
                candidate_since=history.candidate_since,
                until=history.until,
                last_event_ms=history.last_event_ms,
                registry=registry,
            )
            repeated = unchanged.repeated_version(inputs) if inputs is not None else None
        if inputs is not None and repeated is not None:
            seconds = time.perf_counter() - started
            summary, said = _unchanged_outcome(repeated, inputs.champion.version, history, seconds)
            completed(outcome="unchanged", reason=summary["reason"])
        else:
            with _progress_reporter(stages=3 + options.folds) as (progress, detail):
                run = run_training(
                    history.frame,
                    registry=registry,
                    options=options,
                    progress=_stoppable(progress, stop),
                    detail=_stoppable(detail, stop),
                    read_since=history.since,
                    read_until=history.until,
                    last_event_ms=history.last_event_ms,
                )
            summary, said = _run_outcome(run, history, options)
            trained = run
            completed(
                outcome=summary["outcome"],
                reason=run.gate.reason,
                version=run.metadata.version,
                metrics=summary["metrics"],
            )
    # noted before the outcome is printed: a reader that left (a closed pipe) must not
    # make the next tick train and register the same model again
    if unchanged is not None and inputs is not None and trained is not None:
        try:
            unchanged.remember(inputs, registry, trained.metadata, trained.promoted)
        except Exception:  # only ever costs a retrain: never fails a completed run
            log.exception("could not note what this run trained on; the next tick trains")
    with reader_may_leave():  # the run is done and recorded: printing it cannot fail it
        click.echo(json.dumps(summary) if as_json else said)
        sys.stdout.flush()


def _unchanged_outcome(
    repeated: int, champion: int | None, history: LoadedHistory, seconds: float
) -> tuple[dict[str, Any], str]:
    """The JSON line and the text of a skipped run (``seconds``: reading and comparing)."""
    import pandas as pd

    if history.last_event_ms is not None:  # the archive's, which the read stops before
        last = pd.Timestamp(history.last_event_ms, unit="ms", tz="UTC")
    else:
        last = history.frame["event_time"].max()
    reason = (
        f"the history (last payment {last:%Y-%m-%d %H:%M} UTC) and the champion "
        f"({'v' + str(champion) if champion is not None else 'none'}) are as the run that "
        f"registered v{repeated} left them: training again would repeat it; the next tick "
        "trains once new payments, or labels on the payments it reads, are archived"
    )
    summary = {
        "outcome": "unchanged",
        "model_version": None,
        "promoted": False,
        "reason": reason,
        "champion_version": champion,
        "repeated_version": repeated,
        "seconds": round(seconds, 1),
    }
    return summary, f"no new model: {reason}"


def _run_outcome(
    run: TrainingRun, history: LoadedHistory, options: PipelineOptions
) -> tuple[dict[str, Any], str]:
    """The JSON line and the text of a run that registered a version."""
    meta = run.metadata
    stage_seconds = {
        k: round(v, 1) for k, v in {"read": history.seconds, **run.stage_seconds}.items()
    }
    keys = ("roc_auc", "average_precision", "card_precision_at_100", "recall_at_alert_rate")
    summary = {
        "outcome": "promoted" if run.promoted else "challenger",
        "model_version": meta.version,
        "promoted": run.promoted,
        "gate": run.gate.reason,
        # the champion when the run began (None: none); the gate says if it was scored
        "champion_version": meta.extra["gate"]["champion"],
        "metrics": {k: round(meta.metrics[k], 4) for k in keys},
        "thresholds": {"review": meta.thresholds.review, "decline": meta.thresholds.decline},
        "train_rows": run.train_rows,
        "test_rows": run.test_rows,
        "test_frauds": int(history.frame["is_fraud"].to_numpy()[run.evaluation.rows].sum()),
        "seconds": round(run.seconds, 1),
        "stage_seconds": stage_seconds,
        "report": str(run.report),
    }
    m = {k: meta.metrics[k] for k in keys}
    where_time_went = ", ".join(f"{k} {v:.1f}s" for k, v in stage_seconds.items())
    said = (
        f"model v{meta.version}: AUC {m['roc_auc']:.3f}, AP {m['average_precision']:.3f}, "
        f"CP@100 {m['card_precision_at_100']:.3f}, "
        f"recall@{100 * options.training.alert_rate:g}% {m['recall_at_alert_rate']:.3f} "
        f"on {run.test_rows:,} test rows\n"
        f"{run.seconds + history.seconds:.1f}s ({where_time_went})\n"
        f"{'promoted' if run.promoted else 'not promoted'}: {run.gate.reason}\n"
        f"report: {run.report}"
    )
    return summary, said
