"""Hot model reload: the worker follows the registry's champion without a restart.

Between batches the worker asks :meth:`ModelWatcher.poll` whether the champion pointer
moved (a small file read, at most every ``interval_s``). A new champion is loaded in a
background thread, checked (sha256, feature set) and, if asked, compiled, while the
current one keeps serving: batches do not wait for it (compiling a 386-tree model takes
seconds). A later poll swaps it in once it is ready. A model that fails the checks is
refused once, logged, and the current one keeps serving.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from batch_training.errors import RegistryError
from batch_training.registry import ModelRegistry
from stream.compiled import CompileOptions
from stream.scoring import ServingModel, load_serving_model

__all__ = ["ModelWatcher"]

log = logging.getLogger(__name__)


class ModelWatcher:
    def __init__(
        self,
        *,
        registry: ModelRegistry,
        current: ServingModel,
        interval_s: float,
        compile_options: CompileOptions | None = None,
    ) -> None:
        self._registry = registry
        self._compile_options = compile_options
        self.current = current
        self._interval_s = interval_s
        self._next_check = time.monotonic() + interval_s
        self.refused: set[int] = set()
        self.swaps = 0
        # the version being loaded in the background, and its load
        self._loading: tuple[int, asyncio.Task[ServingModel]] | None = None

    async def poll(self) -> ServingModel | None:
        """The new champion once it is loaded and passed the checks, else None."""
        if self._loading is not None:
            loading, task = self._loading
            if not task.done():
                return None
            self._loading = None
            return self._loaded(loading, task)
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self._interval_s
        version = self._champion()
        if version is None or version == self.current.version or version in self.refused:
            return None
        # the version read, not whatever is champion when the thread gets to it: a refusal
        # must name the model that failed
        load = functools.partial(
            load_serving_model,
            self._registry,
            version=version,
            compile_options=self._compile_options,
        )
        self._loading = (version, asyncio.create_task(asyncio.to_thread(load)))
        return None

    @property
    def loading(self) -> int | None:
        """The version being loaded in the background, if any."""
        return None if self._loading is None else self._loading[0]

    def _champion(self) -> int | None:
        """The champion's version; None when there is none or the pointer is unreadable."""
        try:
            return self._registry.champion_version()
        except (RegistryError, OSError, ValueError, KeyError) as exc:
            log.warning("cannot read the champion pointer: %s", exc)
            return None

    async def close(self) -> None:
        """Wait for a load in progress (its thread cannot be interrupted)."""
        if self._loading is not None:
            await asyncio.gather(self._loading[1], return_exceptions=True)
            self._loading = None

    def _loaded(self, version: int, task: asyncio.Task[ServingModel]) -> ServingModel | None:
        """The finished load of ``version``, if it passed the checks and is still champion."""
        try:
            candidate = task.result()  # anything but a refusal below fails the worker, as before
        except (RegistryError, OSError, ValueError) as exc:
            self.refused.add(version)
            log.error(
                "refused model v%s, still serving v%s: %s", version, self.current.version, exc
            )
            return None
        if self._champion() not in (candidate.version, None):  # promoted or rolled back since
            return None  # the next poll loads the champion it is now
        log.warning("serving model v%s (was v%s)", candidate.version, self.current.version)
        self.current = candidate
        self.swaps += 1
        return candidate
