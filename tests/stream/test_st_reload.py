"""Hot reload keeps serving through a champion pointer it cannot read."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

import stream.reload
from batch_training.registry import ModelRegistry
from stream.reload import ModelWatcher
from stream.scoring import ServingModel, load_serving_model


def test_an_unreadable_pointer_is_logged_and_the_current_model_serves_on(
    registry_copy: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    current = load_serving_model(registry_copy)
    watcher = ModelWatcher(registry=registry_copy, current=current, interval_s=0.0)
    (registry_copy.root / "champion.json").write_text('{"version": 1')  # a hand edit, cut off
    with caplog.at_level(logging.WARNING, logger="stream.reload"):
        assert asyncio.run(watcher.poll()) is None
    assert watcher.current is current
    assert "cannot read the champion pointer" in caplog.text
    assert "delete it" in caplog.text


def test_a_new_champion_loads_in_the_background_while_the_current_one_serves(
    registry_copy: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
    registry_edits: Any,
) -> None:
    """Compiling a champion takes seconds: batches must not wait for it (they did, for up
    to 2.4 s at a swap under load)."""
    current = load_serving_model(registry_copy)
    second = registry_edits.register_copy(registry_copy)
    registry_copy.promote(second)
    release = threading.Event()

    def slow_load(registry: ModelRegistry, **options: Any) -> ServingModel:
        release.wait(timeout=30)
        return load_serving_model(registry, **options)

    monkeypatch.setattr(stream.reload, "load_serving_model", slow_load)

    async def batches() -> ServingModel:
        watcher = ModelWatcher(registry=registry_copy, current=current, interval_s=0.0)
        started = time.monotonic()
        assert await watcher.poll() is None  # the load starts; this batch goes on
        assert await watcher.poll() is None  # still loading: the next one too
        assert time.monotonic() - started < 1.0
        assert watcher.current is current
        release.set()
        deadline = time.monotonic() + 30
        while (swapped := await watcher.poll()) is None:
            assert time.monotonic() < deadline, "the loaded champion never swapped in"
            await asyncio.sleep(0.01)  # a batch's worth of time
        return swapped

    swapped = asyncio.run(batches())
    assert swapped.version == second


def test_a_champion_rolled_back_during_a_load_is_not_swapped_in(
    registry_copy: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
    registry_edits: Any,
) -> None:
    current = load_serving_model(registry_copy)
    second = registry_edits.register_copy(registry_copy)
    registry_copy.promote(second)
    release, compiling = threading.Event(), threading.Event()

    def slow_load(registry: ModelRegistry, **options: Any) -> ServingModel:
        model = load_serving_model(registry, **options)  # v2, then a long compile
        compiling.set()
        release.wait(timeout=30)
        return model

    monkeypatch.setattr(stream.reload, "load_serving_model", slow_load)

    async def batches() -> list[ServingModel | None]:
        watcher = ModelWatcher(registry=registry_copy, current=current, interval_s=0.0)
        assert await watcher.poll() is None
        assert watcher.loading == second
        assert await asyncio.to_thread(compiling.wait, 30)
        registry_copy.rollback()  # the operator takes it back meanwhile
        release.set()
        swaps = []
        deadline = time.monotonic() + 30
        while watcher.loading is not None:  # until the load ends and a poll takes it
            assert time.monotonic() < deadline, "the load never finished"
            swaps.append(await watcher.poll())
            await asyncio.sleep(0.01)  # a batch's worth of time
        swaps += [await watcher.poll() for _ in range(3)]
        assert watcher.current is current
        return swaps

    assert set(asyncio.run(batches())) == {None}  # v1 serves on, never v2


def test_a_load_refuses_the_version_it_read_not_the_champion_of_the_moment(
    registry_copy: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
    registry_edits: Any,
) -> None:
    """The pointer moves to a tampered v3 while v2 is being loaded: v3 is refused, and v2,
    which is sound, serves again once rolled back to (it was refused in v3's place)."""
    current = load_serving_model(registry_copy)
    second = registry_edits.register_copy(registry_copy)
    registry_copy.promote(second)
    third = registry_edits.register_copy(registry_copy)
    model_file = registry_copy.version_dir(third) / "model.ubj"
    model_file.write_bytes(model_file.read_bytes()[:-8] + b"tampered")
    registry_edits.point_champion_at(registry_copy, second)
    release, started = threading.Event(), threading.Event()

    def slow_load(registry: ModelRegistry, **options: Any) -> ServingModel:
        started.set()
        release.wait(timeout=30)
        return load_serving_model(registry, **options)

    monkeypatch.setattr(stream.reload, "load_serving_model", slow_load)

    async def batches() -> ModelWatcher:
        watcher = ModelWatcher(registry=registry_copy, current=current, interval_s=0.0)
        assert await watcher.poll() is None
        assert watcher.loading == second
        assert await asyncio.to_thread(started.wait, 30)
        # before the thread reads the registry
        registry_edits.point_champion_at(registry_copy, third)
        release.set()
        await _poll_until(watcher, lambda: third in watcher.refused, "v3 was never refused")
        assert set(watcher.refused) == {third}
        assert watcher.current is current  # v2 loaded, but no longer champion: not swapped
        registry_edits.point_champion_at(registry_copy, second)  # the operator goes back to v2
        await _poll_until(watcher, lambda: watcher.current.version == second, "v2 never served")
        return watcher

    assert set(asyncio.run(batches()).refused) == {third}


async def _poll_until(watcher: ModelWatcher, done: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, what
        await watcher.poll()
        await asyncio.sleep(0.01)  # a batch's worth of time


async def _settle(watcher: ModelWatcher, polls: int = 5) -> None:
    """A few polls, each after the load the one before started (if any) was taken."""
    for _ in range(polls):
        await watcher.poll()
        await _poll_until(watcher, lambda: watcher.loading is None, "a load never ended")


def _tamper(registry: ModelRegistry, version: int) -> bytes:
    model_file = registry.version_dir(version) / "model.ubj"
    sound = model_file.read_bytes()
    model_file.write_bytes(sound[:-8] + b"tampered")
    return sound


def test_a_refused_champion_is_served_once_repaired_and_retried_until_then(
    registry_copy: ModelRegistry, registry_edits: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal used to last for the life of the worker: a repaired (or promoted again)
    champion was never loaded, and the worker served another model without a word."""
    current = load_serving_model(registry_copy)
    second = registry_edits.register_copy(registry_copy)
    sound = _tamper(registry_copy, second)
    registry_edits.point_champion_at(registry_copy, second)

    async def batches() -> ModelWatcher:
        watcher = ModelWatcher(
            registry=registry_copy, current=current, interval_s=0.0, retry_refused_s=3600
        )
        await _poll_until(watcher, lambda: watcher.refusals == 1, "v2 was never refused")
        await _settle(watcher)
        assert watcher.refusals == 1  # nothing changed: not loaded again
        # the served v1 is watched while the champion is refused: a restart would need it
        served = _tamper(registry_copy, current.version)
        await _settle(watcher)
        assert "the files of model v1, which this worker serves" in caplog.text
        (registry_copy.version_dir(current.version) / "model.ubj").write_bytes(served)
        await _settle(watcher)
        (registry_copy.version_dir(second) / "model.ubj").write_bytes(sound)  # repaired
        await _poll_until(watcher, lambda: watcher.current.version == second, "v2 never served")
        assert watcher.refused == {}
        return watcher

    with caplog.at_level(logging.ERROR, logger="stream.reload"):
        assert asyncio.run(batches()).refusals == 1
    assert "tried again when its files or the champion pointer change" in caplog.text

    # with nothing changed, a refusal is tried (and logged) again every retry_refused_s
    _tamper(registry_copy, second)
    registry_edits.point_champion_at(registry_copy, 1)

    async def retried() -> int:
        watcher = ModelWatcher(
            registry=registry_copy, current=current, interval_s=0.0, retry_refused_s=0.0
        )
        registry_edits.point_champion_at(registry_copy, second)
        await _settle(watcher)
        return watcher.refusals

    assert asyncio.run(retried()) == 5


def test_the_served_model_altered_on_disk_is_reported_and_serves_on(
    registry_copy: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker serves the copy it loaded; its restart would refuse the files: an
    operator hears of it now, once, and not when the worker next starts."""
    current = load_serving_model(registry_copy)
    champion = current.version

    async def batches() -> ModelWatcher:
        watcher = ModelWatcher(registry=registry_copy, current=current, interval_s=0.0)
        await _settle(watcher, polls=2)
        sound = _tamper(registry_copy, champion)
        await _settle(watcher)
        assert watcher.current is current
        (registry_copy.version_dir(champion) / "model.ubj").write_bytes(sound)
        await _settle(watcher)
        assert watcher.current is current
        return watcher

    with caplog.at_level(logging.WARNING, logger="stream.reload"):
        watcher = asyncio.run(batches())
    assert (watcher.refusals, watcher.swaps) == (0, 0)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"the files of model v{champion}, which this worker serves")
    assert "a restart would refuse them" in errors[0]
    assert f"the files of model v{champion} pass the checks again" in caplog.text  # repaired
    assert "serving model" not in caplog.text  # no swap onto itself


def test_damaged_served_files_are_reported_again_until_repaired(
    registry_copy: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    current = load_serving_model(registry_copy)

    async def batches() -> None:
        watcher = ModelWatcher(
            registry=registry_copy, current=current, interval_s=0.0, retry_refused_s=0.0
        )
        _tamper(registry_copy, current.version)
        await _settle(watcher, polls=3)

    with caplog.at_level(logging.ERROR, logger="stream.reload"):
        asyncio.run(batches())
    assert caplog.text.count("which this worker serves, fail the checks") == 3
