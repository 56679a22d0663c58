"""Which days of a history a run reads, and where its windows fall."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from batch_training.dataset import TimeSplit, complete_test_end, fold_splits, latest_split
from batch_training.errors import RegistryError
from batch_training.model_features import feature_set_of
from batch_training.options import PipelineOptions
from batch_training.registry import ModelRegistry
from feature_store import FeaturePlan

__all__ = ["HistoryReach", "history_reach", "run_split"]


@dataclass(frozen=True)
class HistoryReach:
    """The days of a history a run reads, ``first_day`` until (before) ``end_day``, and
    whose features reach back to ``first_day``."""

    first_day: date
    end_day: date
    set_by: str
    # the first day the candidate's own features need: first_day unless the champion's
    # reach further back (the days before are read only to re-score the champion)
    candidate_first_day: date
    by_champion: bool = False


def history_reach(
    options: PipelineOptions, last_event_ms: int, registry: ModelRegistry
) -> HistoryReach:
    """The days of a history whose last event is at ``last_event_ms`` that a run with
    ``options`` reads: the candidate's features back from its earliest fold's training
    start, the champion's (re-scored on the latest test window) back from that window's
    start, up to the latest test window's end (no later day is in any window)."""
    latest = _split_from(options, last_event_ms)
    earliest = fold_splits(latest, options.folds)[-1]
    candidate = options.feature_set
    candidate_day = FeaturePlan(candidate).first_day_read(earliest.train_start)
    reach = HistoryReach(
        candidate_day, latest.test_end, f"the candidate's {candidate.name} features", candidate_day
    )
    version = registry.champion_version()
    if version is None:
        return reach
    try:
        champion = feature_set_of(registry.metadata(version))
    except RegistryError:  # a champion this release cannot serve is replaced, not re-scored
        return reach
    champion_day = FeaturePlan(champion).first_day_read(latest.test_start)
    if champion_day < reach.first_day:
        set_by = f"champion v{version}'s {champion.name} features"
        return HistoryReach(champion_day, latest.test_end, set_by, candidate_day, by_champion=True)
    return reach


def _split_from(options: PipelineOptions, last_event_ms: int) -> TimeSplit:
    """The options' split, or the latest one whose labels are complete by the event at
    ``last_event_ms`` (as :func:`latest_split` places it)."""
    if options.train_start is not None:
        return options.split_starting(options.train_start.date())
    return options.split_ending(complete_test_end(last_event_ms, options.label_delay_s))


def run_split(
    history: pd.DataFrame, options: PipelineOptions, last_event_ms: int | None
) -> TimeSplit:
    """The options' split, or the latest one the history holds (``last_event_ms``: the
    last event of a history that ``history`` is the earlier part of)."""
    if options.train_start is None:
        return latest_split(
            history,
            train_days=options.train_days,
            delay_days=options.delay_days,
            test_days=options.test_days,
            label_delay_s=options.label_delay_s,
            last_event_ms=last_event_ms,
        )
    return options.split_starting(options.train_start.date())
