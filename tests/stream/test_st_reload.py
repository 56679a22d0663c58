"""Hot reload keeps serving through a champion pointer it cannot read."""

from __future__ import annotations

import asyncio
import logging

import pytest

from batch_training.registry import ModelRegistry
from stream.reload import ModelWatcher
from stream.scoring import load_serving_model


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
