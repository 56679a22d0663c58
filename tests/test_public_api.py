"""The small public surface of each package, and the stream's independence from training."""

from __future__ import annotations

import subprocess
import sys

import pytest

import batch_training.champion
import batch_training.champion_pointer
import batch_training.dataset
import batch_training.errors
import batch_training.folds
import batch_training.gate
import batch_training.metrics
import batch_training.model_features
import batch_training.model_metadata
import batch_training.options
import batch_training.pipeline
import batch_training.reach
import batch_training.registry
import batch_training.report
import batch_training.schedule
import batch_training.train
import embedded
import feature_store
import feature_store.online
import review
import simulator
import stream


@pytest.mark.parametrize(
    "module",
    [
        feature_store,
        feature_store.online,
        stream,
        simulator,
        embedded,
        review,
        batch_training.champion,
        batch_training.champion_pointer,
        batch_training.dataset,
        batch_training.errors,
        batch_training.folds,
        batch_training.gate,
        batch_training.metrics,
        batch_training.model_features,
        batch_training.model_metadata,
        batch_training.options,
        batch_training.pipeline,
        batch_training.reach,
        batch_training.registry,
        batch_training.report,
        batch_training.schedule,
        batch_training.train,
    ],
    ids=lambda module: module.__name__,
)
def test_exports_exist_and_are_unique(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(module, name), f"{module.__name__}.{name} is exported but missing"  # type: ignore[attr-defined]


def test_the_stream_does_not_import_training_code() -> None:
    """Only the registry's own modules (what a version is, the champion pointer) and the
    errors: a module added here needs the same care, as it loads in every worker."""
    code = (
        "import stream.app, sys; "
        "print(sorted(m for m in sys.modules if m.startswith('batch_training')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (
        out.stdout.strip()
        == "['batch_training', 'batch_training.champion_pointer', 'batch_training.errors', "
        "'batch_training.model_features', 'batch_training.model_metadata', "
        "'batch_training.registry']"
    )
