"""The serving model: the registry's champion, checked against the stream's feature set.

With compilation on, the champion is also compiled to native code (:mod:`stream.compiled`)
and both backends are timed once at load on a few batch sizes; each batch is then scored by
the backend that was faster for the nearest measured size. Either backend gives the same
scores, so the choice changes latency only.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from batch_training.model_features import feature_set_of
from batch_training.model_metadata import LoadedModel
from batch_training.registry import ModelRegistry
from feature_store import FeatureSet
from stream.compiled import (
    CompiledModel,
    CompileOptions,
    compile_booster,
    probe_rows,
)

__all__ = [
    "TIMED_BATCH_SIZES",
    "Backend",
    "BackendChoice",
    "ServingModel",
    "choose_backends",
    "load_serving_model",
]

log = logging.getLogger(__name__)

Backend = Literal["inplace", "compiled"]
Scorer = Callable[[np.ndarray], np.ndarray]

TIMED_BATCH_SIZES: Final = (1, 16, 64, 256)


@dataclass(frozen=True)
class BackendChoice:
    """The faster backend per measured batch size; other sizes use the nearest one."""

    sizes: tuple[int, ...]  # ascending
    backends: tuple[Backend, ...]
    median_us: tuple[Mapping[Backend, float], ...]  # per size, per backend

    @functools.cached_property
    def _edges(self) -> list[float]:
        # nearest on a log scale: the bucket edges are the geometric means of neighbours
        return [math.sqrt(a * b) for a, b in zip(self.sizes, self.sizes[1:], strict=False)]

    def for_rows(self, rows: int) -> Backend:
        return self.backends[bisect.bisect_left(self._edges, rows)]

    def describe(self) -> str:
        return ", ".join(
            f"{size}: {backend} ("
            + " vs ".join(f"{name} {us:.0f} µs" for name, us in timing.items())
            + ")"
            for size, backend, timing in zip(self.sizes, self.backends, self.median_us, strict=True)
        )


def choose_backends(
    scorers: Mapping[Backend, Scorer],
    probe: np.ndarray,
    *,
    sizes: Sequence[int] = TIMED_BATCH_SIZES,
    budget_s: float = 0.4,
    clock: Callable[[], float] = time.perf_counter,
) -> BackendChoice:
    """Time every scorer on the first ``size`` probe rows, alternating between them.

    Per size, rounds of one call each repeat until the size's share of ``budget_s`` is spent
    (at least 5, at most 51 rounds); the median of each scorer decides. A tie keeps the
    first scorer given.
    """
    if not scorers or not sizes or len(probe) < max(sizes):
        raise ValueError(f"need scorers, sizes and at least {max(sizes, default=0)} probe rows")
    ordered = sorted(sizes)
    share = budget_s / len(ordered)
    backends: list[Backend] = []
    medians: list[dict[Backend, float]] = []
    for size in ordered:
        batch = probe[:size]
        for score in scorers.values():
            score(batch)  # first calls pay for lazy set-up: not what serving sees
        samples: dict[Backend, list[float]] = {name: [] for name in scorers}
        started = clock()
        for round_ in range(51):
            if round_ >= 5 and clock() - started > share:
                break
            for name, score in scorers.items():
                t0 = clock()
                score(batch)
                samples[name].append(clock() - t0)
        timing = {name: float(np.median(s)) * 1e6 for name, s in samples.items()}
        backends.append(min(timing, key=lambda name: timing[name]))
        medians.append(timing)
    return BackendChoice(sizes=tuple(ordered), backends=tuple(backends), median_us=tuple(medians))


@dataclass(frozen=True)
class ServingModel:
    model: LoadedModel
    feature_set: FeatureSet
    compiled: CompiledModel | None = None
    choice: BackendChoice | None = None  # None: XGBoost's inplace_predict for every batch

    @property
    def version(self) -> int:
        return self.model.metadata.version

    def backend_for(self, rows: int) -> Backend:
        if self.compiled is None or self.choice is None:
            return "inplace"
        return self.choice.for_rows(rows)

    def score_batch(self, features: np.ndarray) -> np.ndarray:
        """Fraud probability per row; one model call for the whole batch."""
        if self.compiled is not None and self.backend_for(len(features)) == "compiled":
            try:
                return self.compiled.predict(features)
            except Exception:  # native code failing must not be worse than XGBoost: use it
                log.exception("compiled model v%s failed; this batch goes to XGBoost", self.version)
        return np.asarray(self.model.booster.inplace_predict(features), dtype=np.float64)


def _inplace(model: LoadedModel) -> Scorer:
    def score(features: np.ndarray) -> np.ndarray:
        return np.asarray(model.booster.inplace_predict(features), dtype=np.float64)

    return score


def _with_compiled(serving: ServingModel, options: CompileOptions) -> ServingModel:
    """The model with its native library and backend choice; as it was if compiling fails."""
    meta = serving.model.metadata
    try:
        compiled = compile_booster(
            serving.model.booster, model_sha256=meta.model_sha256, options=options
        )
        # Synthetic but model-shaped rows (see probe_rows): no live batch is at hand at load.
        probe = probe_rows(serving.model.booster, max(TIMED_BATCH_SIZES), seed=2)
        choice = choose_backends(
            {"inplace": _inplace(serving.model), "compiled": compiled.predict}, probe
        )
    # CompilationError, or the timing failing: an optimisation must never refuse a model
    except Exception as exc:
        log.warning("model v%s is served by XGBoost, not compiled: %s", meta.version, exc)
        return serving
    built = (
        "from the cache"
        if compiled.build_s is None
        else f"in {compiled.build_s:.1f} s ({compiled.units} units)"
    )
    log.info(
        "model v%s compiled %s, %d trees, max |diff| vs XGBoost %.1g; per batch size: %s",
        meta.version,
        built,
        compiled.trees,
        compiled.max_abs_diff,
        choice.describe(),
    )
    return ServingModel(
        model=serving.model, feature_set=serving.feature_set, compiled=compiled, choice=choice
    )


def load_serving_model(
    registry: ModelRegistry,
    *,
    version: int | None = None,
    compile_options: CompileOptions | None = None,
) -> ServingModel:
    """Load the champion (or ``version``) and refuse it unless its features are exactly ours.

    With ``compile_options`` the model is also compiled (or taken from the cache) and the
    faster backend chosen per batch size; a failed compilation only logs a warning.
    """
    loaded = registry.load_champion() if version is None else registry.load(version)
    meta = loaded.metadata
    serving = ServingModel(model=loaded, feature_set=feature_set_of(meta))
    return serving if compile_options is None else _with_compiled(serving, compile_options)
