"""The faust worker: consumes transactions in micro-batches and produces decisions.

Everything that can be done once happens here, before the first event: topics, the
champion model and its feature set, the online store (warmed from a history if asked).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path
from typing import Any

import faust
import pandas as pd
import xgboost as xgb

from batch_training.registry import ModelRegistry
from feature_store import (
    FeaturePlan,
    FeatureSet,
    HistoryTooLargeError,
    OnlineStoreUnavailable,
    read_history,
)
from feature_store.archive import archive_day_rows, archive_last_day, first_day_within
from feature_store.materialize import materialize_history
from feature_store.online import MemoryOnlineStore, OnlineStore, RedisOnlineStore
from stream.compiled import CompileOptions
from stream.errors import StreamStartError
from stream.lifecycle import FaustWorker, log_thread_errors, ready_file_removed
from stream.metrics import StreamMetrics
from stream.pipeline import OutRecord, build_pipeline, label_retry_delay_s
from stream.processor import RawEvent
from stream.scoring import ServingModel, load_serving_model
from stream.settings import StreamSettings
from stream.topics import ensure_topics
from stream.transport import low_latency_transport

__all__ = ["build_app", "run_worker", "tune_gc"]

log = logging.getLogger(__name__)


def _make_store(settings: StreamSettings) -> OnlineStore:
    if settings.redis_url is None:
        return MemoryOnlineStore()
    try:
        return RedisOnlineStore(url=settings.redis_url)
    except ValueError:  # the client's URL parser; its message can quote the password
        raise StreamStartError(
            "FRAUD_REDIS_URL is not a Redis URL the client can use; give "
            "redis://[:password@]host:port/db (a password with / # @ or : percent-encoded)"
        ) from None


def _check_store(settings: StreamSettings) -> None:
    """Start without Redis (decisions are degraded until it answers), but say so now:
    without traffic nothing else would. With a client of its own: a Redis client is
    bound to the event loop it first ran on."""
    store = _make_store(settings)

    async def _ping() -> None:
        try:
            await store.ping()
        finally:
            await store.close()

    try:
        asyncio.run(_ping())
    except OnlineStoreUnavailable as exc:
        log.error("online store unreachable at start; decisions are degraded until it is: %s", exc)


def _serve_metrics(metrics: StreamMetrics, port: int) -> None:
    try:
        metrics.serve(port)
    except OSError as exc:
        raise StreamStartError(
            f"FRAUD_METRICS_PORT={port}: {exc.strerror}; choose a free port, or 0 for no metrics"
        ) from None


def _make_data_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StreamStartError(
            f"FRAUD_DATA_DIR={str(path)!r}: {exc.strerror}; give a directory this user can write"
        ) from None


def _warm(
    settings: StreamSettings, path: Path, store: OnlineStore, feature_set: FeatureSet
) -> None:
    """Replay a history into the store before consuming, so features start warm; of an
    archive, only the days the served features reach back over, and of those only the
    latest that fit ``warm_max_rows``: a worker that starts short of history serves, one
    killed for memory does not."""
    last_day = archive_last_day(path)  # None unless an archive
    if last_day is None:
        history = _read_whole_warm_up(path, settings.warm_max_rows)
    else:
        since = FeaturePlan(feature_set).first_day_read(last_day)
        day_rows = archive_day_rows(path, since=since)
        fitting = first_day_within(day_rows, since, settings.warm_max_rows)
        if fitting != since:
            log.error(
                "warm-up: %s holds %d rows from %s on, more than FRAUD_WARM_MAX_ROWS=%d; "
                "warming from %s: features over longer windows start short of history "
                "until they fill. Raise the limit if this machine has the memory",
                path,
                sum(day_rows.values()),
                since,
                settings.warm_max_rows,
                "nothing (starting cold)" if fitting is None else fitting,
            )
        if fitting is None:
            return
        # no limit here: a part the archiver adds meanwhile is a minute of traffic
        history = read_history(path, since=fitting)
    # A Redis client is bound to the event loop it first ran on: warm with its own client.
    warm_store = store if isinstance(store, MemoryOnlineStore) else _make_store(settings)

    async def _run() -> int:
        try:
            return await materialize_history(history, feature_set=feature_set, store=warm_store)
        finally:
            if warm_store is not store:
                await warm_store.close()

    rows = asyncio.run(_run())
    log.warning("warmed the online store with %d history rows from %s", rows, path)


def _read_whole_warm_up(path: Path, max_rows: int) -> pd.DataFrame:
    try:
        return read_history(path, max_rows=max_rows)
    except HistoryTooLargeError as exc:  # refused before loading: the operator chooses
        raise exc.with_fix(
            "a file is read whole: warm from one of fewer days, or from a `fraud archive` "
            "(then only the latest days that fit are replayed); raise FRAUD_WARM_MAX_ROWS if "
            "this machine has the memory, or start without FRAUD_WARM_HISTORY when the "
            "online store already holds the state"
        ) from None


def _record_lag(app: faust.App, events: list[Any], metrics: StreamMetrics) -> None:
    """Lag per partition: the partition's end minus the last offset just processed."""
    last: dict[Any, int] = {}
    for e in events:
        last[e.message.tp] = max(last.get(e.message.tp, -1), e.message.offset)
    for tp, offset in last.items():
        end = app.consumer.highwater(tp)
        if end is not None:
            metrics.lag.labels(str(tp.partition)).set(max(0, end - offset - 1))


def _compile_options(settings: StreamSettings) -> CompileOptions | None:
    """Compiled libraries go in the worker's own data dir (the registry may be read-only)."""
    return (
        CompileOptions(cache_dir=settings.data_dir / "compiled") if settings.compile_model else None
    )


def build_app(
    settings: StreamSettings,
    *,
    bootstrap: str,
    store: OnlineStore,
    metrics: StreamMetrics,
    model: ServingModel | None = None,
) -> faust.App:
    """The faust app with its agents; the model is loaded (and compiled) before, or now,
    never per event. The app closes ``store`` when it stops."""
    compile_options = _compile_options(settings)
    if model is None:
        model = load_serving_model(
            ModelRegistry(settings.registry_dir), compile_options=compile_options
        )
    pipeline = build_pipeline(
        settings, store=store, metrics=metrics, model=model, compile_options=compile_options
    )
    topics = settings.topics
    transport = low_latency_transport(settings.fetch_max_wait_ms)

    class _App(faust.App):
        def _new_transport(self) -> Any:
            return transport(self.conf.broker_consumer, self)

        async def on_shutdown(self) -> None:
            # after the agents stopped: no batch is using the ledger, the store or a load
            await pipeline.close()
            await store.close()

    app = _App(
        settings.app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=str(settings.data_dir),
        web_enabled=False,
        topic_disable_leader=True,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.group_timeout_s,
        broker_rebalance_timeout=settings.group_timeout_s,
        broker_heartbeat_interval=max(0.5, settings.group_timeout_s / 5),
        broker_max_poll_records=2000,
        stream_buffer_maxsize=16_384,
        consumer_max_fetch_size=8 * 1024 * 1024,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(topics.transactions, **raw)
    sinks = {name: app.topic(name, **raw) for name in (topics.decisions, topics.alerts, topics.dlq)}
    window_s = settings.batch_window_ms / 1000.0

    def _raw(e: Any) -> RawEvent:
        m = e.message
        return RawEvent(e.value, m.timestamp, m.topic, m.partition, m.offset)

    async def _send(records: list[OutRecord]) -> None:
        # Awaited sends only queue the record in the producer (acks are not awaited);
        # faust flushes the producer before committing offsets: at least once.
        # (send_soon stalled the worker under a 200k backlog on Tansu: faust's producer
        # buffer filled and never drained; see the stream benchmark notes.)
        for topic, key, value in records:
            await sinks[topic].send(key=key, value=value)

    swapping = asyncio.Lock()  # a model swaps between batches, never during one

    @app.agent(source)
    async def score(stream: faust.StreamT[bytes]) -> None:
        # take_events is missing from faust's StreamT stub, not from the Stream class
        batches = stream.take_events(settings.batch_max, within=window_s)  # type: ignore[attr-defined]
        async for events in batches:
            async with swapping:
                await pipeline.between_batches()  # between batches: no event waits on a swap
                records = await pipeline.process([_raw(e) for e in events])
            await _send(records)
            _record_lag(app, events, metrics)

    @app.timer(interval=settings.model_poll_s)  # type: ignore[untyped-decorator]
    async def follow_the_champion() -> None:
        """Without traffic no batch asks: a promotion is served (and its version shown in
        the metrics) while idle too, as in the batched loop."""
        async with swapping:
            await pipeline.between_batches()

    labels_topic = app.topic(topics.labels, **raw)

    @app.agent(labels_topic)
    async def learn(stream: faust.StreamT[bytes]) -> None:
        """Verdicts update the label-delayed state (merchant fraud rates) of the store."""
        batches = stream.take_events(settings.batch_max, within=0.05)  # type: ignore[attr-defined]
        async for events in batches:
            updates, letters = pipeline.decode_labels([_raw(e) for e in events])
            await _send(letters)
            failures = 0
            while True:  # the store is down: hold these labels (later ones wait behind them)
                try:
                    await pipeline.apply_labels(updates)
                    break
                except OnlineStoreUnavailable as exc:
                    failures += 1
                    delay = label_retry_delay_s(failures)
                    log.error(
                        "could not apply %d labels, retrying them in %.2f s: %s",
                        len(updates),
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)

    if settings.ready_file is not None:
        ready_file: Path = settings.ready_file

        # mode types connect() as a union of callables that mypy cannot match an async def to
        @app.on_rebalance_complete.connect  # type: ignore[arg-type]
        async def _mark_ready(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
            ready_file.write_text("ready\n")

    return app


# Young collections every 10,000 container allocations instead of 700: a 1,000-event
# batch allocates tens of thousands, and each collection also walks what survives it.
_GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """Move what start-up built (modules, the model, a warmed store) out of the collector's
    reach, and collect the young generation less often.

    Freezing only skips those objects in collections: their memory is still freed when
    unreferenced. Measured in a drain (``bench/consume_ceiling.py``), the collector took
    10-38 µs of each event's CPU with the defaults (Redis / in-memory store), mostly
    re-walking the start-up heap in full collections; under 3 µs after this.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def run_worker(settings: StreamSettings, *, bootstrap: str) -> None:
    """Prepare once, then run the worker (faust, or the batched loop) until SIGTERM/SIGINT."""
    with ready_file_removed(settings.ready_file):
        _run_worker(settings, bootstrap=bootstrap)


def _run_worker(settings: StreamSettings, *, bootstrap: str) -> None:
    xgb.set_config(nthread=settings.xgboost_threads)  # this (the event loop's) thread
    ensure_topics(bootstrap, settings.topics.all(), partitions=settings.partitions)
    store = _make_store(settings)
    if isinstance(store, RedisOnlineStore):
        _check_store(settings)
    # the champion is loaded (and compiled) once, for the warm-up and the agent alike
    model = load_serving_model(
        ModelRegistry(settings.registry_dir), compile_options=_compile_options(settings)
    )
    # lifecycle lines are warnings: the default level shows them, as it shows a swap
    log.warning(
        "serving model v%s (feature set %s) of %s",
        model.version,
        model.feature_set.name,
        settings.registry_dir,
    )
    if settings.warm_history is not None:
        _warm(settings, settings.warm_history, store, model.feature_set)
    _make_data_dir(settings.data_dir)
    metrics = StreamMetrics()
    if settings.metrics_port:
        _serve_metrics(metrics, settings.metrics_port)
    log_thread_errors()
    tune_gc()  # last: everything above is start-up state
    if settings.consumer == "batched":
        from stream.batched import run_batched

        # faust's worker sets the level itself; here it is ours to set ("WARN" is a name too)
        logging.getLogger().setLevel(settings.log_level.upper())

        asyncio.run(
            run_batched(
                settings,
                bootstrap=bootstrap,
                store=store,
                metrics=metrics,
                model=model,
                compile_options=_compile_options(settings),
            )
        )
        return
    app = build_app(settings, bootstrap=bootstrap, store=store, metrics=metrics, model=model)
    # redirect_stdouts=False: faust logs every write to stderr as a line of its own, so a
    # traceback became a hundred WARNING lines, one per caret
    worker = FaustWorker(
        app,
        ready_file=settings.ready_file,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
    )
    # faust's start-up spinner writes cursor codes even to a file or a pipe, glued to the
    # next log line; a service's log has no use for it
    worker.spinner = None
    worker.execute_from_commandline()
