"""The champion compiled to native code (TL2cgen + a C compiler), scoring exactly as XGBoost.

Treelite reads the booster, TL2cgen writes it out as C (one ``if`` tree per tree, spread over
several translation units so that a model of hundreds of trees compiles in parallel), the C
compiler builds a shared library, and TL2cgen's predictor runs it. The library is cached
under the model's sha256, so a model is compiled once, at load, never per event.

Scores equal XGBoost's bit for bit, not only approximately: XGBoost starts each row at the
float32 base margin and adds the trees' float32 leaves in order. The generated code instead
adds the base margin last and writes leaves as double literals (``r += 0.1234``, evaluated in
double and rounded once), which drifts by a few float32 ulps of the margin: up to 8e-7 in
probability with 60 trees, 1.9e-6 with 386 (probe rows). Two rewrites restore XGBoost's
arithmetic, and both are needed: the base margin is folded into the first tree's leaves (in
float32, as XGBoost's first addition rounds it) and every leaf literal becomes a ``(float)``
constant. A compiled model is served only after it matched ``inplace_predict`` on probe rows
(:func:`probe_rows`).

Compilation is an optimisation: any failure raises :class:`CompilationError`, and the
caller keeps scoring with XGBoost.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import xgboost as xgb

if TYPE_CHECKING:
    import tl2cgen
    import treelite

__all__ = [
    "TOLERANCE",
    "CompilationError",
    "CompileOptions",
    "CompiledModel",
    "compile_booster",
    "probe_rows",
]

log = logging.getLogger(__name__)

TOLERANCE: Final = 1e-6  # the most a served compiled score may differ from XGBoost's
_TREES_PER_UNIT: Final = 32  # gcc's time grows faster than linearly with a file's size
_MAX_UNITS: Final = 64
# Bump when the generated source or its rewrite changes: old libraries are then not reused.
_RECIPE: Final = 1
# -ffp-contract=off: no fused multiply-add, whose single rounding XGBoost does not do.
_CFLAGS: Final = ("-O2", "-fPIC", "-std=c99", "-ffp-contract=off")
_COMPILER_NAME = re.compile(r"[A-Za-z0-9_./+-]+")
_CACHE_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")  # a file name, never a path
# A leaf added to the running sum, as TL2cgen writes it: ``result[0] += -0.0833;``
_LEAF_ADD = re.compile(r"(result\[\d+\] \+= )([-+0-9.eE]+);")
_ANY_ADD = re.compile(r"result\[\d+\] \+= ")


class CompilationError(RuntimeError):
    """The booster could not be turned into a verified native library (XGBoost serves)."""


@dataclass(frozen=True, kw_only=True)
class CompileOptions:
    """How to compile, and where compiled libraries are kept.

    ``cache_dir`` holds native code that the worker loads and runs: it must be as trusted as
    the registry (writable only by the trainer and the workers).
    """

    cache_dir: Path
    compiler: str = "gcc"  # a name on PATH or a path; run without a shell
    build_jobs: int | None = None  # parallel compiler processes; None = every core
    # TL2cgen's OpenMP threads per batch. One: a second thread halves large batches on an idle
    # machine, but stalls for milliseconds when the event loop, Redis and Kafka keep the
    # cores busy (bench/inference.py, compiled_2_threads).
    predict_threads: int = 1
    timeout_s: float = 600.0  # per compiler process: a hung compiler must not hang a load
    nice: bool = True  # compile at low CPU priority: a hot reload builds while a model serves


class CompiledModel:
    """A booster's native twin: ``predict`` returns the same probabilities as XGBoost."""

    def __init__(
        self,
        *,
        library: Path,
        num_features: int,
        predict_threads: int,
        trees: int,
        units: int,
        build_s: float | None,
    ) -> None:
        import tl2cgen

        self.library = library
        self.num_features = num_features
        self.trees = trees
        self.units = units
        self.build_s = build_s  # None: loaded from the cache
        self.max_abs_diff = math.nan  # against XGBoost on the probe rows, once verified
        # TL2cgen: "predict may be called by only one thread at a time"
        self._lock = threading.Lock()
        self._matrix = tl2cgen.DMatrix
        _route_native_messages()
        self._predictor: tl2cgen.Predictor | None = tl2cgen.Predictor(
            library, nthread=predict_threads
        )
        if self._predictor.num_feature != num_features:
            taken = self._predictor.num_feature
            self.close()
            raise CompilationError(
                f"{library.name} takes {taken} features, the booster {num_features}"
            )

    def close(self) -> None:
        """Unload the library now (a library loaded by path stays loaded while referenced,
        so a rejected one must go before a rebuilt one of the same name can be loaded)."""
        with self._lock:
            self._predictor = None

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Fraud probability per row (float64, like ``ServingModel.score_batch``)."""
        # XGBoost reads features as float32 too: the same rounding of the inputs
        rows = np.ascontiguousarray(features, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.num_features:
            # the native code would read past the row: refuse before calling it
            raise ValueError(
                f"expected rows of {self.num_features} features, got shape {features.shape}"
            )
        if rows.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        matrix = self._matrix(rows, missing=np.nan)
        with self._lock:
            if self._predictor is None:
                raise CompilationError(f"{self.library.name} was unloaded")
            out = self._predictor.predict(matrix)
        return np.asarray(out, dtype=np.float64).reshape(rows.shape[0])


def _log_native_note(message: bytes) -> None:
    log.debug("tl2cgen: %s", message.decode("utf-8", "replace").strip())


# ctypes drops a callback once nothing in Python refers to it: this one lives with the module
_NATIVE_NOTE: Final = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(_log_native_note)


def _route_native_messages() -> None:
    """Send TL2cgen's native notes made on this thread to our log.

    TL2cgen registers callbacks that print() its log and warnings.warn() its warnings, and
    only on the thread that imported it: the registry is per thread. Its notes are not
    errors, yet would be raised as such where warnings are errors; catching them by
    redirecting stdout and the warnings filters would be process-wide, and swallow what
    the event loop prints while a reload compiles beside it. So each call into TL2cgen
    registers ours on its own thread first (cheap); only the library handle is reached
    through a private name. (The Treelite bundled in TL2cgen writes its own notes, such as
    "model from a newer Treelite version", straight to stderr: those are not caught.)
    """
    from tl2cgen import libloader

    lib = getattr(libloader, "_LIB", None)
    if lib is None:
        return
    for register in (lib.TL2cgenRegisterLogCallback, lib.TL2cgenRegisterWarningCallback):
        if register(_NATIVE_NOTE) != 0:
            log.debug("tl2cgen: could not register a callback: %s", lib.TL2cgenGetLastError())


def probe_rows(booster: xgb.Booster, rows: int, *, seed: int = 0) -> np.ndarray:
    """Synthetic feature rows (float64) built from the model's own split points.

    Each feature takes one of its split thresholds or the float32 just below it, and 10%
    of the values are missing. Rows so take varied paths through every tree (a fair load for
    timing, where random noise would mostly fall on one side of each split) and sit exactly
    on the comparisons where a float rounding difference would show (the strictest equality
    check). Features the model never splits on are 0.
    """
    model = json.loads(bytes(booster.save_raw(raw_format="json")))
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    width = booster.num_features()
    thresholds: list[list[float]] = [[] for _ in range(width)]
    for tree in trees:
        for child, feature, value in zip(
            tree["left_children"], tree["split_indices"], tree["split_conditions"], strict=True
        ):
            if child != -1:
                thresholds[feature].append(value)
    rng = np.random.default_rng(seed)
    out = np.zeros((rows, width), dtype=np.float32)
    for j, values in enumerate(thresholds):
        if values:
            at = rng.choice(np.asarray(values, dtype=np.float32), size=rows)
            below = np.nextafter(at, np.float32(-np.inf))
            out[:, j] = np.where(rng.random(rows) < 0.5, at, below)
    out[rng.random(out.shape) < 0.1] = np.nan
    return out.astype(np.float64)


def _units(trees: int) -> int:
    return max(1, min(_MAX_UNITS, math.ceil(trees / _TREES_PER_UNIT)))


def _recipe_key(options: CompileOptions, units: int) -> str:
    import tl2cgen
    import treelite

    recipe = {
        "recipe": _RECIPE,
        "tl2cgen": tl2cgen.__version__,
        "treelite": treelite.__version__,
        "compiler": options.compiler,
        "cflags": _CFLAGS,
        "units": units,
        "machine": platform.machine(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _treelite_model(booster: xgb.Booster) -> treelite.Model:
    """Treelite's copy of the booster, its base margin folded into the first tree."""
    import treelite

    model = treelite.frontend.from_xgboost(booster)
    header = model.get_header_accessor()
    base = np.asarray(header.get_field("base_scores"))
    first = model.get_tree_accessor(0)
    if base.shape != (1,) or np.asarray(first.get_field("leaf_vector")).size:
        raise CompilationError("only single-output models (binary:logistic) are compiled")
    leaves = np.asarray(first.get_field("cleft")) == -1
    values = np.asarray(first.get_field("leaf_value"))
    folded = values.copy()
    # XGBoost's first addition, base margin + leaf, rounded as float32
    folded[leaves] = np.float32(base[0]) + values[leaves].astype(np.float32)
    first.set_field("leaf_value", folded.astype(values.dtype))
    header.set_field("base_scores", np.zeros_like(base))
    return model


def _float_leaves(source_dir: Path) -> None:
    """Make every ``+= <literal>`` a float32 addition, as XGBoost's sum is."""
    for source in sorted(source_dir.glob("*.c")):
        text = source.read_text()
        rewritten, count = _LEAF_ADD.subn(r"\1(float)\2;", text)
        if count != len(_ANY_ADD.findall(text)):
            raise CompilationError(
                f"unexpected TL2cgen output in {source.name}: not every addition is a literal"
            )
        source.write_text(rewritten)


def _run(command: list[str], cwd: Path, timeout_s: float) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise CompilationError(f"{' '.join(command)} ran over {timeout_s:.0f} s") from exc
    except OSError as exc:
        raise CompilationError(f"cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        raise CompilationError(
            f"{' '.join(command)} exited with {done.returncode}: {done.stderr[-2000:]}"
        )


def _build(source_dir: Path, options: CompileOptions) -> Path:
    """Compile the translation units in parallel, link them; the library's path."""
    compiler = shutil.which(options.compiler)
    if not _COMPILER_NAME.fullmatch(options.compiler) or compiler is None:
        raise CompilationError(f"no C compiler {options.compiler!r} on PATH")
    prefix = ["nice", "-n", "10"] if options.nice and shutil.which("nice") else []
    recipe = json.loads((source_dir / "recipe.json").read_text())
    names = [str(s["name"]) for s in recipe["sources"]]
    jobs = options.build_jobs or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(names)))) as pool:
        compiles = [
            pool.submit(
                _run,
                [*prefix, compiler, "-c", *_CFLAGS, "-o", f"{name}.o", f"{name}.c"],
                source_dir,
                options.timeout_s,
            )
            for name in names
        ]
        for done in compiles:
            done.result()  # the first failure, re-raised
    library = source_dir / "predictor.so"
    objects = [f"{name}.o" for name in names]
    _run(
        [*prefix, compiler, "-shared", *_CFLAGS, "-o", library.name, *objects, "-lm"],
        source_dir,
        options.timeout_s,
    )
    return library


def _compile_to(target: Path, booster: xgb.Booster, units: int, options: CompileOptions) -> None:
    """Write the verified-later library to ``target`` atomically (readers see all or none)."""
    import tl2cgen

    build_dir = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        _route_native_messages()
        tl2cgen.generate_c_code(
            _treelite_model(booster), build_dir, params={"parallel_comp": units}
        )
        _float_leaves(build_dir)
        os.replace(_build(build_dir, options), target)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def _verified(compiled: CompiledModel, booster: xgb.Booster) -> CompiledModel:
    probe = probe_rows(booster, 512, seed=1)
    expected = np.asarray(booster.inplace_predict(probe), dtype=np.float64)
    diff = float(np.max(np.abs(compiled.predict(probe) - expected)))
    if not diff <= TOLERANCE:  # also catches NaN scores
        compiled.close()
        raise CompilationError(
            f"{compiled.library.name} scores differ from XGBoost's by {diff:.3g} "
            f"(tolerance {TOLERANCE:g})"
        )
    compiled.max_abs_diff = diff
    return compiled


def _load_or_build(
    booster: xgb.Booster, model_sha256: str, options: CompileOptions
) -> CompiledModel:
    if not _CACHE_KEY.fullmatch(model_sha256):
        raise CompilationError(f"{model_sha256!r} cannot name a file in the cache")
    trees = booster.num_boosted_rounds()
    units = _units(trees)
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    library = options.cache_dir / f"{model_sha256}-{_recipe_key(options, units)}.so"

    def load(build_s: float | None) -> CompiledModel:
        compiled = CompiledModel(
            library=library,
            num_features=booster.num_features(),
            predict_threads=options.predict_threads,
            trees=trees,
            units=units,
            build_s=build_s,
        )
        return _verified(compiled, booster)

    if library.is_file():
        try:
            return load(None)
        except Exception as exc:  # a bad cached file is rebuilt, whatever broke in it
            log.warning("cached %s is unusable (%s); compiling again", library.name, exc)
            library.unlink(missing_ok=True)
    started = time.perf_counter()
    _compile_to(library, booster, units, options)
    try:
        return load(time.perf_counter() - started)
    except Exception:
        library.unlink(missing_ok=True)  # not kept to fail again at every load
        raise


def compile_booster(
    booster: xgb.Booster, *, model_sha256: str, options: CompileOptions
) -> CompiledModel:
    """The booster's verified native library, from the cache or freshly compiled.

    Raises :class:`CompilationError` for any failure (no compiler, TL2cgen missing or
    failing, a library that does not score like XGBoost); never anything else.
    """
    try:
        return _load_or_build(booster, model_sha256, options)
    except CompilationError:
        raise
    # Compilation is an optimisation, and its dependencies (TL2cgen, Treelite, the compiler,
    # the file system) fail in ways of their own: whatever broke, XGBoost serves instead.
    except Exception as exc:
        raise CompilationError(f"{type(exc).__name__}: {exc}") from exc
