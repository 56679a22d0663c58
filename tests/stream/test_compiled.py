"""The compiled champion scores exactly as XGBoost, falls back to it, and wins per batch size."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from batch_training.registry import ModelRegistry
from feature_store import compute_offline_features
from stream.compiled import (
    TOLERANCE,
    CompilationError,
    CompiledModel,
    CompileOptions,
    compile_booster,
    probe_rows,
)
from stream.scoring import (
    TIMED_BATCH_SIZES,
    Backend,
    BackendChoice,
    ServingModel,
    choose_backends,
    load_serving_model,
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compiled")


@pytest.fixture(scope="module")
def served(trained_registry: ModelRegistry, cache_dir: Path) -> ServingModel:
    """The fixture champion, compiled once for this module (later loads hit the cache)."""
    model = load_serving_model(
        trained_registry, compile_options=CompileOptions(cache_dir=cache_dir)
    )
    assert model.compiled is not None, "gcc and tl2cgen are on this machine: it must compile"
    return model


@pytest.fixture(scope="module")
def live_like_rows(served: ServingModel, small_history: pd.DataFrame) -> np.ndarray:
    """Real feature rows of another simulated population (their own missing values), then
    rows on the model's split points with 10% missing, and one row missing everything."""
    offline = compute_offline_features(served.feature_set, small_history).to_numpy(np.float64)
    adversarial = probe_rows(served.model.booster, 400, seed=5)
    blank = np.full((1, offline.shape[1]), np.nan)
    return np.vstack([offline[:600], adversarial, blank])


def _compiled(model: ServingModel) -> CompiledModel:
    assert model.compiled is not None
    return model.compiled


@pytest.mark.parametrize("rows", [1, 256, 1001])
def test_compiled_scores_equal_xgboost_within_1e6(
    served: ServingModel, live_like_rows: np.ndarray, rows: int
) -> None:
    booster = served.model.booster
    # the last rows are the adversarial ones: every size includes missing values
    batch = live_like_rows[-rows:]
    assert np.isnan(batch).any()
    compiled = _compiled(served).predict(batch)
    inplace = booster.inplace_predict(batch)
    dmatrix = booster.predict(xgb.DMatrix(batch, feature_names=list(served.feature_set.names)))
    assert compiled.shape == (rows,)
    np.testing.assert_allclose(compiled, inplace, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(compiled, dmatrix, rtol=0, atol=TOLERANCE)


def test_real_features_have_missing_values_and_score_the_same(
    served: ServingModel, live_like_rows: np.ndarray
) -> None:
    real = live_like_rows[:600]
    assert np.isnan(real).any(), "the history's first transactions have no previous one"
    np.testing.assert_allclose(
        _compiled(served).predict(real),
        served.model.booster.inplace_predict(real),
        rtol=0,
        atol=TOLERANCE,
    )


def test_score_batch_is_the_same_whichever_backend_serves(
    served: ServingModel, live_like_rows: np.ndarray
) -> None:
    split: tuple[Backend, Backend] = ("compiled", "inplace")
    forced = ServingModel(
        model=served.model,
        feature_set=served.feature_set,
        compiled=served.compiled,
        choice=BackendChoice(sizes=(1, 256), backends=split, median_us=({}, {})),
    )
    plain = ServingModel(model=served.model, feature_set=served.feature_set)
    assert [forced.backend_for(n) for n in (1, 16, 17, 300)] == [
        "compiled",
        "compiled",
        "inplace",
        "inplace",
    ]
    assert plain.backend_for(1) == "inplace"
    for rows in (1, 16, 300):
        batch = live_like_rows[-rows:]
        np.testing.assert_allclose(
            forced.score_batch(batch), plain.score_batch(batch), rtol=0, atol=TOLERANCE
        )


def test_the_library_is_compiled_once_per_model(
    served: ServingModel, trained_registry: ModelRegistry, cache_dir: Path
) -> None:
    first = _compiled(served)
    assert first.build_s is not None
    assert first.build_s > 0
    assert first.library.parent == cache_dir
    assert first.library.name.startswith(served.model.metadata.model_sha256)
    again = load_serving_model(
        trained_registry, compile_options=CompileOptions(cache_dir=cache_dir)
    )
    assert _compiled(again).build_s is None  # from the cache
    assert _compiled(again).library == first.library
    assert [p.name for p in cache_dir.iterdir()] == [first.library.name]  # no build leftovers


def test_compiling_in_the_background_leaves_stdout_to_the_rest_of_the_process(
    trained_registry: ModelRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hot reload compiles in a thread beside the event loop: TL2cgen's notes go to the
    log, and nothing the loop prints meanwhile is swallowed (a process-wide redirect of
    stdout for the compile's duration once did)."""
    booster = trained_registry.load_champion().booster
    options = CompileOptions(cache_dir=tmp_path)
    with caplog.at_level(logging.DEBUG, logger="stream.compiled"):
        compiling = threading.Thread(
            target=compile_booster,
            args=(booster,),
            kwargs={"model_sha256": "bg", "options": options},
        )
        compiling.start()
        printed = 0
        while compiling.is_alive():
            print(f"loop line {printed}")
            printed += 1
            compiling.join(timeout=0.001)  # a line per millisecond until the compile ends
    out = capsys.readouterr().out
    assert out.splitlines() == [f"loop line {i}" for i in range(printed)]
    assert "Parallel compilation enabled" in caplog.text  # TL2cgen's note, in our log


def test_load_times_both_backends_on_every_batch_size(served: ServingModel) -> None:
    choice = served.choice
    assert choice is not None
    assert choice.sizes == TIMED_BATCH_SIZES
    assert len(choice.backends) == len(TIMED_BATCH_SIZES)
    for backend, timing in zip(choice.backends, choice.median_us, strict=True):
        assert set(timing) == {"inplace", "compiled"}
        assert all(us > 0 for us in timing.values())
        assert timing[backend] == min(timing.values())


def test_a_missing_compiler_falls_back_to_xgboost(
    trained_registry: ModelRegistry,
    tmp_path: Path,
    live_like_rows: np.ndarray,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = CompileOptions(cache_dir=tmp_path, compiler="no-such-cc-for-tests")
    with pytest.raises(CompilationError, match="no-such-cc-for-tests"):
        compile_booster(trained_registry.load_champion().booster, model_sha256="x", options=options)
    with caplog.at_level(logging.WARNING, logger="stream.scoring"):
        model = load_serving_model(trained_registry, compile_options=options)
    assert model.compiled is None
    assert model.choice is None
    assert "served by XGBoost, not compiled" in caplog.text
    for rows in (1, 256):
        batch = live_like_rows[-rows:]
        assert model.backend_for(rows) == "inplace"
        np.testing.assert_array_equal(
            model.score_batch(batch),
            model.model.booster.inplace_predict(batch).astype(np.float64),
        )


def test_a_failing_compiler_falls_back_too(trained_registry: ModelRegistry, tmp_path: Path) -> None:
    # `false` exists and fails every compilation: the error names the command
    options = CompileOptions(cache_dir=tmp_path, compiler="false")
    model = load_serving_model(trained_registry, compile_options=options)
    assert model.compiled is None
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".so"]


def test_a_cached_library_that_scores_differently_is_rebuilt(
    served: ServingModel, tmp_path: Path, live_like_rows: np.ndarray
) -> None:
    smaller = served.model.booster[0:30]  # another model: its first 30 trees
    options = CompileOptions(cache_dir=tmp_path)
    library = compile_booster(smaller, model_sha256="first-30-trees", options=options).library
    # the cache now holds the wrong model (the full one) under the smaller model's name;
    # replaced, not overwritten in place: a loaded library's file must never change
    shutil.copyfile(_compiled(served).library, tmp_path / "wrong")
    os.replace(tmp_path / "wrong", library)
    rebuilt = compile_booster(smaller, model_sha256="first-30-trees", options=options)
    assert rebuilt.build_s is not None, "the wrong library was detected and compiled again"
    np.testing.assert_allclose(
        rebuilt.predict(live_like_rows),
        smaller.inplace_predict(live_like_rows),
        rtol=0,
        atol=TOLERANCE,
    )


def test_a_cached_file_that_is_no_library_is_rebuilt(
    trained_registry: ModelRegistry, tmp_path: Path
) -> None:
    booster = trained_registry.load_champion().booster
    options = CompileOptions(cache_dir=tmp_path)
    library = compile_booster(booster, model_sha256="v1", options=options).library
    (tmp_path / "junk").write_bytes(b"not a shared library")
    os.replace(tmp_path / "junk", library)
    rebuilt = compile_booster(booster, model_sha256="v1", options=options)
    assert rebuilt.build_s is not None
    assert rebuilt.max_abs_diff <= TOLERANCE


def test_a_model_key_that_is_a_path_is_refused(
    trained_registry: ModelRegistry, tmp_path: Path
) -> None:
    options = CompileOptions(cache_dir=tmp_path / "cache")
    with pytest.raises(CompilationError, match="cannot name a file"):
        compile_booster(
            trained_registry.load_champion().booster, model_sha256="../escape", options=options
        )
    assert not list(tmp_path.rglob("*.so"))


def test_rows_of_the_wrong_width_are_refused(served: ServingModel) -> None:
    with pytest.raises(ValueError, match="features"):
        _compiled(served).predict(np.zeros((2, 3)))
    assert _compiled(served).predict(np.zeros((0, len(served.feature_set.names)))).shape == (0,)


class _Ticks:
    """A clock that advances only by the simulated cost of each scorer call."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def scorer(self, fixed_us: float, per_row_us: float) -> Callable[[np.ndarray], np.ndarray]:
        def score(batch: np.ndarray) -> np.ndarray:
            self.now += (fixed_us + per_row_us * len(batch)) / 1e6
            return np.zeros(len(batch))

        return score


def test_the_chooser_picks_the_faster_backend_per_bucket() -> None:
    ticks = _Ticks()
    # a costly call with cheap rows against a cheap call with costly rows: they cross at 45
    scorers: dict[Backend, Callable[[np.ndarray], np.ndarray]] = {
        "inplace": ticks.scorer(fixed_us=100, per_row_us=1),
        "compiled": ticks.scorer(fixed_us=10, per_row_us=3),
    }
    choice = choose_backends(scorers, np.zeros((256, 4)), clock=ticks)
    assert choice.sizes == (1, 16, 64, 256)
    assert choice.backends == ("compiled", "compiled", "inplace", "inplace")
    assert choice.median_us[0] == {"inplace": pytest.approx(101), "compiled": pytest.approx(13)}
    # each batch size goes to the nearest timed size (log scale)
    assert [choice.for_rows(n) for n in (1, 4, 5, 32, 33, 128, 129, 5000)] == [
        "compiled",
        "compiled",
        "compiled",
        "compiled",
        "inplace",
        "inplace",
        "inplace",
        "inplace",
    ]


def test_the_chooser_needs_enough_probe_rows() -> None:
    with pytest.raises(ValueError, match="256 probe rows"):
        choose_backends({"inplace": lambda b: b[:, 0]}, np.zeros((10, 2)))
