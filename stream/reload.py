"""Hot model reload: the worker follows the registry's champion without a restart.

Between batches the worker asks :meth:`ModelWatcher.poll` whether the champion pointer
moved (a small file read, at most every ``interval_s``). A new champion is loaded off the
event loop, checked (sha256, feature set) and, if asked, compiled before it serves; a model
that fails the checks is refused once, logged, and the current one keeps serving.
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

    async def poll(self) -> ServingModel | None:
        """The new champion if it changed and passed the checks, else None."""
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self._interval_s
        try:
            version = self._registry.champion_version()
        except (RegistryError, OSError, ValueError, KeyError) as exc:
            log.warning("cannot read the champion pointer: %s", exc)
            return None
        if version is None or version == self.current.version or version in self.refused:
            return None
        try:
            # compiling a new champion takes seconds: off the loop, the current one serves
            load = functools.partial(
                load_serving_model, self._registry, compile_options=self._compile_options
            )
            candidate = await asyncio.to_thread(load)
        except (RegistryError, OSError, ValueError) as exc:
            self.refused.add(version)
            log.error(
                "refused model v%s, still serving v%s: %s", version, self.current.version, exc
            )
            return None
        log.warning("serving model v%s (was v%s)", candidate.version, self.current.version)
        self.current = candidate
        self.swaps += 1
        return candidate
