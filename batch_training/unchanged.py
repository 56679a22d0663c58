"""Skipping a scheduled run that has nothing new to learn from.

Under ``fraud train --every`` the options never change, and training is deterministic with
its seed: a run on the same history, judged against the same champion, registers the same
model again, as a challenger, at every tick of an archive that stopped growing. So a tick
is skipped when what a run depends on is what the last successful run of this process
had: its options, the rows it read (every column), where it read them (the days, and
the archive's last payment, from which the latest window is placed), and the champion it
is judged against (version and model checksum). Days read only to re-score a champion
whose features reach further back count apart: once the run promoted its candidate, they
are no longer read, and the next tick, judged against that candidate, is skipped. A
champion that cannot be served is never a reason to skip (the next run replaces it), unless
runs never promote or the gate declines the candidate as a model an operator rolled back;
the first tick of a process always trains.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import date

import pandas as pd
import pyarrow as pa

from batch_training.errors import RegistryError
from batch_training.model_metadata import ModelMetadata
from batch_training.options import PipelineOptions
from batch_training.registry import ModelRegistry

__all__ = ["ChampionState", "RunInputs", "UnchangedRuns", "read_digest"]

log = logging.getLogger(__name__)


def read_digest(frame: pd.DataFrame) -> str:
    """sha256 over every column's Arrow buffers: any changed value, row or column changes it.

    Not the metadata's data fingerprint, which hashes row by row so that it does not depend
    on how the data was laid out in memory: this one does, but the same files read the same
    way give the same digest, at a quarter of the cost (about 1 s for 10M rows). Raises
    what pyarrow raises for a column it cannot hold (ArrowException, OverflowError ...).
    """
    digest = hashlib.sha256()
    table = pa.Table.from_pandas(frame, preserve_index=False)  # zero-copy where it can
    for name, column in zip(table.column_names, table.columns, strict=True):
        array = column.combine_chunks()  # the rows' bytes, not the buffers of a larger read
        if pa.types.is_dictionary(array.type):  # its buffers hold codes, not the values
            array = array.dictionary_decode()
        digest.update(f"{name}\0{array.type}\0{array.offset}\0{len(array)}\0".encode())
        for buffer in array.buffers():
            if buffer is not None:
                digest.update(buffer)
    return digest.hexdigest()


@dataclass(frozen=True)
class ChampionState:
    """The champion a run is judged against, by version and model checksum."""

    version: int | None  # None: no champion
    model_sha256: str | None = None
    servable: bool = True  # False: altered, gone, or unreadable


@dataclass(frozen=True)
class RunInputs:
    """What a scheduled run's outcome depends on."""

    options: PipelineOptions  # a schedule's never change: kept so that no caller relies on it
    history: str  # read_digest of the rows read from ``since``
    # the days of an archive the candidate's features need (None: a file, read whole)
    since: date | None
    until: date | None
    last_event_ms: int | None  # the archive's last payment: it places the latest window
    champion: ChampionState
    # read_digest of the rows before ``since``, read only to re-score the champion (None:
    # none were read)
    champion_history: str | None = None


@dataclass(frozen=True)
class _Remembered:
    inputs: RunInputs
    version: int  # the version that run registered


class UnchangedRuns:
    """What the last successful run of a schedule trained on, to skip a run that would
    repeat it."""

    def __init__(self) -> None:
        self._last: _Remembered | None = None

    def inputs(
        self,
        options: PipelineOptions,
        frame: pd.DataFrame,
        *,
        candidate_since: date | None,
        until: date | None,
        last_event_ms: int | None,
        registry: ModelRegistry,
    ) -> RunInputs | None:
        """This run's inputs, taken before it trains (``frame``: the rows read, in time
        order, those before ``candidate_since`` for the champion only); None when its
        history cannot be digested (every tick then trains)."""
        try:
            first = _first_row_on(frame, candidate_since)
            history = read_digest(frame.iloc[first:])
            champion_history = read_digest(frame.iloc[:first]) if first else None
        # any error (an integer column beyond 64 bits raises OverflowError): the digest
        # only saves work, and must never fail a run the schedule could train
        except Exception as exc:
            log.warning("cannot digest the history read (%r); every tick trains", exc)
            return None
        champion = _champion(registry)
        return RunInputs(
            options, history, candidate_since, until, last_event_ms, champion, champion_history
        )

    def repeated_version(self, inputs: RunInputs) -> int | None:
        """The version the last run registered, when this run's inputs are the same;
        None: train."""
        last = self._last
        if last is None or inputs != last.inputs:
            return None
        return last.version

    def remember(
        self, inputs: RunInputs, registry: ModelRegistry, registered: ModelMetadata, promoted: bool
    ) -> None:
        """A run on ``inputs`` registered ``registered`` (and promoted it or not). It is
        remembered only if its gate judged it against the champion of ``inputs``, and the
        champion is now that one or itself: a champion an operator moved meanwhile (even
        away and back) was never compared with it."""
        now = _champion(registry)
        if promoted:
            expected = ChampionState(registered.version, registered.model_sha256)
        else:
            expected = inputs.champion
        judged = registered.extra.get("gate", {}).get("champion")
        if now != expected or judged != inputs.champion.version:
            self._last = None
        elif not now.servable and _replaces_unservable(inputs, registry, registered):
            self._last = None  # the next run replaces the champion: never skip it
        elif promoted:  # the days read for the champion it replaced are read no more
            self._last = _Remembered(
                replace(inputs, champion=now, champion_history=None), registered.version
            )
        else:
            self._last = _Remembered(replace(inputs, champion=now), registered.version)


def _first_row_on(frame: pd.DataFrame, day: date | None) -> int:
    """The first row of ``frame`` (in time order) on or after ``day``; 0 without a day or
    when the rows are not in time order (then all count as the candidate's)."""
    if day is None or frame.empty:
        return 0
    times = frame["event_time"]
    if not times.is_monotonic_increasing:
        return 0
    return int(times.searchsorted(pd.Timestamp(day, tz="UTC")))


def _replaces_unservable(
    inputs: RunInputs, registry: ModelRegistry, registered: ModelMetadata
) -> bool:
    """Whether the next run would replace a champion that cannot be served: not when runs
    never promote, nor when the gate declines the model as one an operator rolled back
    (then every tick would register it again)."""
    try:
        rolled_back = registered.model_sha256 in registry.rolled_back_models()
    except RegistryError:  # unreadable: the promotion fails, so it is never replaced
        rolled_back = True
    return inputs.options.promote and not rolled_back


def _champion(registry: ModelRegistry) -> ChampionState:
    """The champion's version and model sha256, its files checked."""
    version = None
    try:
        version = registry.champion_version()
        if version is None:
            return ChampionState(None)
        meta, _ = registry.verify(version)
    except (RegistryError, OSError):  # a file it cannot read is as unservable
        return ChampionState(version, servable=False)
    return ChampionState(version, meta.model_sha256)
