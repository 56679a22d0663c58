"""Hot model reload: the worker follows the registry's champion without a restart.

Between batches the worker asks :meth:`ModelWatcher.poll` whether the champion pointer
moved (a small file read, at most every ``interval_s``). A new champion is loaded in a
background thread, checked (sha256, feature set) and, if asked, compiled, while the
current one keeps serving: batches do not wait for it (compiling a 386-tree model takes
seconds). A later poll swaps it in once it is ready. A model that fails the checks is
refused, logged, and the current one keeps serving; it is tried again once its files or
the pointer change (repaired, or promoted again) and every ``retry_refused_s`` (a read
error may pass), so a champion the worker does not serve is logged until it does. The
served version's own files are watched too: altered in place, they are checked again and
an error says that a restart would refuse them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from dataclasses import dataclass

from batch_training.errors import RegistryError
from batch_training.registry import ModelRegistry
from stream.compiled import CompileOptions
from stream.scoring import ServingModel, load_serving_model

__all__ = ["ModelWatcher"]

log = logging.getLogger(__name__)

# (name, inode, size, ctime) of the pointer and of each file of a version: a rename, a
# rewrite or a repair changes it
_FilesState = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class _Refusal:
    files: _FilesState  # as they were when the version was refused
    retry_at: float  # time.monotonic()


class ModelWatcher:
    def __init__(
        self,
        *,
        registry: ModelRegistry,
        current: ServingModel,
        interval_s: float,
        compile_options: CompileOptions | None = None,
        retry_refused_s: float = 60.0,
    ) -> None:
        self._registry = registry
        self._compile_options = compile_options
        self.current = current
        # unknown: the first poll checks the served files once, as they may have changed
        # since the worker loaded them (a warm-up can take minutes)
        self._current_files: _FilesState = ()
        # while the served files fail the checks: when to check (and say so) again
        self._served_recheck_at: float | None = None
        self._interval_s = interval_s
        self._retry_refused_s = retry_refused_s
        self._next_check = time.monotonic() + interval_s
        self.refused: dict[int, _Refusal] = {}
        self.refusals = 0  # every refusal, a retry's too: the metric counts them
        self.swaps = 0
        # the version being loaded in the background, its files then, and its load
        self._loading: tuple[int, _FilesState, asyncio.Task[ServingModel]] | None = None

    async def poll(self) -> ServingModel | None:
        """The new champion once it is loaded and passed the checks, else None."""
        if self._loading is not None:
            loaded, loaded_files, task = self._loading
            if not task.done():
                return None
            self._loading = None
            return self._loaded(loaded, loaded_files, task)
        now = time.monotonic()
        if now < self._next_check:
            return None
        self._next_check = now + self._interval_s
        version = self._champion()
        if version is None:
            return None
        if version != self.current.version:
            files = self._files(version)
            refusal = self.refused.get(version)
            if refusal is None or files != refusal.files or now >= refusal.retry_at:
                self._load(version, files)
                return None
        # the champion serves, or was refused: the served files are watched either way
        served = self._files(self.current.version)
        due = self._served_recheck_at is not None and now >= self._served_recheck_at
        if served != self._current_files or due:  # altered in place, or only touched: check
            self._load(self.current.version, served)
        return None

    def _load(self, version: int, files: _FilesState) -> None:
        # the version read, not whatever is champion when the thread gets to it: a refusal
        # must name the model that failed
        load = functools.partial(
            load_serving_model,
            self._registry,
            version=version,
            compile_options=self._compile_options,
        )
        self._loading = (version, files, asyncio.create_task(asyncio.to_thread(load)))

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

    def _files(self, version: int) -> _FilesState:
        """The pointer's and ``version``'s files as they are on disk (a few stat calls)."""
        paths = [self._registry.root / "champion.json"]
        with contextlib.suppress(OSError):  # gone: the load says so
            paths += sorted(self._registry.version_dir(version).iterdir())
        state = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue
            # ctime: a rewrite, a rename and a chmod (a permission repair) all change it
            state.append((path.name, st.st_ino, st.st_size, st.st_ctime_ns))
        return tuple(state)

    async def close(self) -> None:
        """Wait for a load in progress (its thread cannot be interrupted)."""
        if self._loading is not None:
            await asyncio.gather(self._loading[2], return_exceptions=True)
            self._loading = None

    def _loaded(
        self, version: int, files: _FilesState, task: asyncio.Task[ServingModel]
    ) -> ServingModel | None:
        """The finished load of ``version``, if it passed the checks and is still champion."""
        serving = self.current.version
        try:
            candidate = task.result()  # anything but a refusal below fails the worker, as before
        except (RegistryError, OSError, ValueError) as exc:
            if version == serving:  # its files changed under the worker
                self._current_files = files
                self._served_recheck_at = time.monotonic() + self._retry_refused_s
                log.error(
                    "the files of model v%s, which this worker serves, fail the checks: %s; "
                    "it serves on the copy it loaded, but a restart would refuse them "
                    "(checked again when they change, and every %.0f s)",
                    version,
                    exc,
                    self._retry_refused_s,
                )
                return None
            self.refused[version] = _Refusal(files, time.monotonic() + self._retry_refused_s)
            self.refusals += 1
            log.error(
                "refused model v%s, still serving v%s: %s; tried again when its files or the "
                "champion pointer change, and every %.0f s (a restarted worker would not "
                "start: it loads the champion)",
                version,
                serving,
                exc,
                self._retry_refused_s,
            )
            return None
        if version == serving:  # its files checked again, and sound
            self._current_files = files
            if self._served_recheck_at is not None:
                self._served_recheck_at = None
                log.warning("the files of model v%s pass the checks again", version)
            return None
        self.refused.pop(version, None)
        if self._champion() not in (candidate.version, None):  # promoted or rolled back since
            return None  # the next poll loads the champion it is now
        log.warning("serving model v%s (was v%s)", candidate.version, serving)
        self.current = candidate
        self._current_files = files
        self.swaps += 1
        return candidate
