"""Session fixtures: a real Kafka-protocol broker and a real Redis server, no mocks."""

# ruff: noqa: E402
# (XGBoost's OpenMP reads its wait policy once, when it is first imported below)
from __future__ import annotations

import os

from fraud_cli.entry import wait_passively_by_default

# as the `fraud` executable: the tests train beside a broker, Redis and workers on 2 cores
wait_passively_by_default(os.environ)

import gc
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from batch_training.pipeline import PipelineOptions, run_training
from batch_training.registry import ModelRegistry
from batch_training.train import TrainingConfig
from embedded import EmbeddedBroker, free_port
from feature_store import CORE_FEATURE_SET
from simulator import SimulationConfig, TrafficGenerator
from tests.kafka_connects import close_sockets_of_cancelled_writes, close_sockets_of_failed_connects
from tests.socket_origins import trace_socket_origins

trace_socket_origins()
close_sockets_of_failed_connects()
close_sockets_of_cancelled_writes()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


def _wait_for_redis(url: str, deadline_s: float) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


class RedisServer:
    """A private redis-server on a fixed port, which a test may stop and start again."""

    def __init__(self, port: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "no Redis: set REDIS_URL or install redis-server (apt-get install redis-server)"
            )
        self._binary = binary
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._workdir = tempfile.mkdtemp(prefix="redis-test-")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_redis(self.url, 10.0)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL if set; else a private redis-server on a free port (Redis is on this machine)."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = RedisServer(free_port()).start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and restart (degraded mode)."""
    server = RedisServer(free_port()).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def synced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths ``os.fsync`` is called on from now on, in order (a durability test: what
    is not synced before it is named is lost in a power cut)."""
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return synced


@pytest.fixture
def unique() -> str:
    """A fresh prefix per test: topics, groups and entity ids never collide between tests."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture(scope="session")
def small_history() -> pd.DataFrame:
    """18 days of a small simulated population, shared read-only by tests: a 10-day
    split, then the 7 days the latest split leaves for its test labels to arrive, and a
    last day that ends before midnight."""
    generator = TrafficGenerator(SimulationConfig(cards=300, merchants=40, seed=11))
    return generator.history(start=datetime(2025, 3, 1, tzinfo=UTC), days=18)


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """A registry whose champion (v1) was trained on a simulated history."""
    generator = TrafficGenerator(SimulationConfig(cards=800, merchants=80, seed=5))
    history = generator.history(start=datetime(2025, 1, 1, tzinfo=UTC), days=28)
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    run_training(
        history,
        registry=registry,
        options=PipelineOptions(
            feature_set=CORE_FEATURE_SET,
            train_days=10,
            delay_days=3,
            test_days=7,
            training=TrainingConfig(seed=1, max_rounds=60),
        ),
    )
    return registry


@pytest.fixture(autouse=True)
def _collect_cycles_after_each_test(
    caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Objects in reference cycles are finalised at the test that made them, so a socket
    one leaks in a cycle fails that test (its ResourceWarning is an error at teardown)
    rather than a later one, or the whole run at pytest's shutdown, naming no test.

    The records pytest captured are let go first: a library that logs an exception keeps
    its traceback's frames, and any socket in them, alive in the record until pytest
    drops it, after this teardown; its socket then failed the next test to collect
    (2026-12-07, in CI: a connected socket at test_log_redaction, the test after the demo's).
    Every socket says where it was made (tests/socket_origins.py)."""
    yield
    for when in ("setup", "call", "teardown"):
        caplog.get_records(when).clear()
    # the report's own handler holds this phase's records too (its text is kept)
    logging_plugin = request.config.pluginmanager.get_plugin("logging-plugin")
    getattr(getattr(logging_plugin, "report_handler", None), "records", []).clear()
    gc.collect()


WaitUntil = Callable[..., None]


def _wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def wait_until() -> WaitUntil:
    """Poll a condition until true, or fail naming it: synchronisation without sleeps."""
    return _wait_until


@pytest.fixture
def registry_copy(trained_registry: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    """A private copy of the trained registry that a test may alter."""
    target = tmp_path / "registry"
    shutil.copytree(trained_registry.root, target)
    return ModelRegistry(target)


class RegistryEdits:
    """What a test does to a registry beyond what training does: copies of a version, and
    the champion pointer moved by hand (``promote`` refuses an altered model)."""

    @staticmethod
    def register_copy(registry: ModelRegistry, version: int = 1) -> int:
        """A new version holding ``version``'s model and metadata; not promoted."""
        loaded = registry.load(version)
        fields = {
            k: v for k, v in vars(loaded.metadata).items() if k not in {"version", "model_sha256"}
        }
        return registry.register(loaded.booster, **fields).version

    @staticmethod
    def point_champion_at(registry: ModelRegistry, version: int) -> None:
        """Move the pointer atomically, as a hand edit, or a model file altered after its
        promotion, would reach a reader."""
        pointer_file = registry.root / "champion.json"
        staged = pointer_file.with_name(".champion-by-hand")
        staged.write_text(json.dumps(json.loads(pointer_file.read_text()) | {"version": version}))
        os.replace(staged, pointer_file)


def rewrite_metadata(version_dir: Path, text: str) -> None:
    """Replace a version's metadata.json and record its new sha256, as if it had been
    registered so (by another release, or with features defined differently then); an
    edit that does not record it is refused as an altered file."""
    metadata = version_dir / "metadata.json"
    metadata.write_text(text)
    sums = version_dir / "SHA256SUMS"
    digest = hashlib.sha256(metadata.read_bytes()).hexdigest()
    lines = [line for line in sums.read_text().splitlines() if not line.endswith("metadata.json")]
    sums.write_text("\n".join([*lines, f"{digest}  metadata.json"]) + "\n")


@pytest.fixture
def registry_edits() -> type[RegistryEdits]:
    """See :class:`RegistryEdits` (a fixture, as conftest is not imported by tests)."""
    return RegistryEdits


@pytest.fixture(scope="session")
def handbook_dir() -> Path:
    """The handbook's data: FRAUD_HANDBOOK_DIR, else ../shared/datasets/handbook."""
    default = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "handbook"
    path = Path(os.environ.get("FRAUD_HANDBOOK_DIR", default))
    if not (path / "transactions_raw.parquet").is_file():
        pytest.fail(
            f"the handbook data is not at {path}: set FRAUD_HANDBOOK_DIR to the folder with "
            "transactions_raw.parquet and transactions_transformed.parquet"
        )
    return path
