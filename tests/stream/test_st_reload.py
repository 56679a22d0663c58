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


def _promote_a_second_version(registry: ModelRegistry) -> int:
    loaded = registry.load(1)
    fields = {
        k: v for k, v in vars(loaded.metadata).items() if k not in {"version", "model_sha256"}
    }
    second = registry.register(loaded.booster, **fields).version
    registry.promote(second, forced=True)
    return second


def test_a_new_champion_loads_in_the_background_while_the_current_one_serves(
    registry_copy: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiling a champion takes seconds: batches must not wait for it (they did, for up
    to 2.4 s at a swap under load)."""
    current = load_serving_model(registry_copy)
    second = _promote_a_second_version(registry_copy)
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
    registry_copy: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = load_serving_model(registry_copy)
    second = _promote_a_second_version(registry_copy)
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
