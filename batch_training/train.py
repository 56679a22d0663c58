"""Fitting an XGBoost model on a training window, time-ordered and deterministic.

The last ``validation_fraction`` of the training window (by time) drives early stopping,
the choice of class weighting (and, with ``tune``, a small hyper-parameter grid, scored
by average precision; the defaults stay unless another candidate's gain clears its
noise), and the cost-minimising thresholds. The chosen configuration is then refitted on
the whole window for the number of rounds validation found best.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import average_precision_score

from batch_training.errors import TrainingConfigError, TrainingDataError
from batch_training.formatting import apart
from batch_training.metrics import CostModel, choose_cost_thresholds
from batch_training.model_metadata import NEVER_ACT, Thresholds
from batch_training.selection import average_precision_gain_se

__all__ = ["FittedModel", "Progress", "TrainingConfig", "fit_model", "prefixed", "search_sample"]

Progress = Callable[[str], None]
# how often (in rounds) a fit reports where it is: every few seconds on 1M rows
_PROGRESS_EVERY = 100


def prefixed(progress: Progress, prefix: str) -> Progress:
    """``progress``, each message led by ``prefix``."""
    return lambda message: progress(f"{prefix}: {message}")


_TUNE_GRID: dict[str, list[Any]] = {
    "max_depth": [4, 6, 8],
    "eta": [0.05, 0.1],
    "min_child_weight": [1, 5],
}


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    seed: int = 7
    validation_fraction: float = 0.2
    # The round budget. On a large window validation AUCPR creeps up long after the test
    # window stops gaining: on six 10M-row simulated windows that stopped later (1,232 to
    # 1,496 rounds), the test AP of the first 1,000 rounds was at most 0.0006 below that of
    # the model at its early stop, and up to 0.0019 above it (bench/round_budget.py).
    # Handbook windows stop by 600.
    max_rounds: int = 1000
    # Shallow trees, a small step and a patient stop: over four handbook test windows x four
    # seeds (bench/trainer_settings.py), depth 4 / 0.05 / 80 gave mean AP 0.752 against 0.746
    # for 6 / 0.1 / 40 (which won 3 of the 16 runs).
    early_stopping_rounds: int = 80
    max_depth: int = 4
    learning_rate: float = 0.05
    # Histogram resolution. With the default 256 bins a feature's split points are quantiles,
    # too coarse where the data are sparse: on the handbook the split on the amount landed
    # below the 220 of its high-amount fraud scenario, so legitimate 205-220 payments
    # scored as frauds. 1,024 bins: handbook mean AP 0.752 against 0.747 (256 won 1 of 16
    # runs; bench/trainer_settings.py), for 1.3x the fit time on its 67k-row windows; on
    # a 2M-row simulated history about the same (0.7213 vs 0.7204) for 1.3x the time.
    max_bin: int = 1024
    # Early stopping scores the validation slice every this many rounds: scoring sorts the
    # whole slice, about a sixth of each round's time on a 1.27M-row window when done every
    # round (bench/results/trainer_settings_10m.json). The best round is a multiple of 4;
    # on the handbook mean AP is unchanged (0.7518 both).
    validation_every: int = 4
    # Candidates (class weightings, the --tune grid) are compared after this many rounds
    # (rounded up to a multiple of validation_every; at most max_rounds); only the best
    # trains on. On the handbook (4 windows x 4 seeds) this chose as well as training all
    # to their end: mean AP 0.7518 against 0.7507 (they disagreed in 3 runs, the screened
    # choice better each time), at a fraction of the rounds for the losers.
    screen_rounds: int = 376
    # The search (class weighting, rounds, the --tune grid) fits on about this many rows
    # of a larger fitting part: every fraud, and legitimate rows sampled and weighted back up;
    # the refit still uses every row. Handbook windows (54k rows) are untouched. On the 10M
    # history's 1M-row fitting part the fit took 156 s against 211 s for `core` (AP 0.6211
    # both) and 170 s against 272 s for `extended` (AP 0.6160 against 0.6162)
    # (bench/results/trainer_settings_search_10m*.json).
    search_rows: int = 400_000
    # A candidate replaces the first (the defaults: weight 1, and the trainer's depth, rate
    # and child weight) only when its validation AP gain exceeds this many bootstrap
    # standard errors of that gain (batch_training/selection.py); 0 takes the highest.
    min_gain_se: float = 1.0
    tune: bool = False
    # At most this many reviews a day (the analysts' capacity): review thresholds that
    # would send more of the validation slice's payments, per day it spans, are not
    # considered. None: no limit.
    review_capacity: int | None = None
    nthread: int = 2
    alert_rate: float = 0.005
    cost: CostModel = field(default_factory=CostModel)

    def __post_init__(self) -> None:
        if not 0.0 < self.validation_fraction < 1.0:
            raise TrainingConfigError(
                f"validation_fraction={self.validation_fraction} must lie in (0, 1), e.g. 0.2"
            )
        if not 0.0 < self.alert_rate <= 1.0:
            raise TrainingConfigError(
                f"alert_rate={self.alert_rate} must lie in (0, 1], e.g. 0.005 for 0.5 % of "
                "the payments (--alert-rate)"
            )
        if self.review_capacity is not None and self.review_capacity < 0:
            raise TrainingConfigError(
                f"review_capacity={self.review_capacity} reviews a day must be at least 0 "
                "(--review-capacity; 0: never review)"
            )
        if not self.min_gain_se >= 0:  # NaN too
            raise TrainingConfigError(
                f"min_gain_se={self.min_gain_se} must be at least 0; 0 takes the candidate "
                "with the highest validation AP"
            )
        for name in (
            "max_rounds",
            "screen_rounds",
            "early_stopping_rounds",
            "validation_every",
            "max_bin",
            "search_rows",
        ):
            if getattr(self, name) < 1:
                raise TrainingConfigError(f"{name}={getattr(self, name)} must be at least 1")

    def validation_start(self, rows: int) -> int:
        """Where the validation slice begins among ``rows`` time-ordered training rows."""
        return int(rows * (1.0 - self.validation_fraction))


@dataclass(frozen=True)
class FittedModel:
    booster: xgb.Booster
    params: dict[str, Any]
    rounds: int
    validation_ap: float
    thresholds: Thresholds
    candidates: list[dict[str, Any]]
    # the candidate (numbered from 1) with the highest validation AP, the one chosen, and,
    # when they are not the defaults, that one's gain over them and its standard error
    selection: dict[str, Any]
    search_rows: int  # the rows the search fitted on (a sample of a large fitting part)


class _EarlyStopping(xgb.callback.TrainingCallback):
    """Stop ``patience`` rounds after the best validation score, scoring every ``every``.

    The best round count is then a multiple of ``every`` (or the last round). One instance
    follows a booster across continued training (``xgb.train(xgb_model=...)``).
    """

    def __init__(
        self,
        valid: xgb.DMatrix,
        *,
        every: int,
        patience: int,
        max_rounds: int,
        progress: Progress,
    ):
        super().__init__()
        self.valid = valid
        self.every = every
        self.patience = patience
        self.max_rounds = max_rounds
        self.progress = progress
        self.best_score = -math.inf
        self.best_rounds = 0
        # the slice's scores at best_rounds, while the eval below has just filled the
        # booster's prediction cache (xgb.train drops it on return: a predict afterwards
        # runs every tree again, 1.3 s of a 10M-row run)
        self.best_scores: np.ndarray | None = None
        self.stopped = False

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: Any) -> bool:
        rounds = model.num_boosted_rounds()  # epoch restarts at 0 when training continues
        if rounds % self.every and rounds < self.max_rounds:
            return False
        # within one xgb.train call the booster caches its margins on this matrix, so only
        # the new trees predict (continued training copies the booster and starts afresh)
        score = float(model.eval(self.valid).rsplit(":", 1)[1])
        if score > self.best_score:
            self.best_score, self.best_rounds = score, rounds
            self.best_scores = model.predict(self.valid)
        self.stopped = rounds - self.best_rounds >= self.patience
        if rounds % _PROGRESS_EVERY == 0:
            self.progress(
                f"round {rounds}/{self.max_rounds}, best validation AUCPR "
                f"{self.best_score:.4f} at {self.best_rounds}"
            )
        return self.stopped


class _RefitProgress(xgb.callback.TrainingCallback):
    def __init__(self, rounds: int, progress: Progress):
        super().__init__()
        self.rounds = rounds
        self.progress = progress

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: Any) -> bool:
        if (epoch + 1) % _PROGRESS_EVERY == 0:
            self.progress(f"round {epoch + 1}/{self.rounds}")
        return False


@dataclass
class _Candidate:
    params: dict[str, Any]
    stopping: _EarlyStopping
    booster: xgb.Booster
    validation_ap: float = 0.0

    def validation_scores(self, valid: xgb.DMatrix, labels: np.ndarray) -> np.ndarray:
        """Scores at the best round so far; records their average precision."""
        scores = self.stopping.best_scores
        if scores is None:
            scores = self.booster.predict(valid, iteration_range=(0, self.stopping.best_rounds))
        self.validation_ap = float(average_precision_score(labels, scores))
        return scores

    def describe(self) -> dict[str, Any]:
        keys = ("max_depth", "eta", "min_child_weight", "scale_pos_weight")
        return {
            "params": {k: self.params[k] for k in keys},
            "rounds": self.stopping.best_rounds,
            "validation_ap": self.validation_ap,
            "finished": self.stopping.stopped
            or self.booster.num_boosted_rounds() >= self.stopping.max_rounds,
        }


def search_sample(
    labels: np.ndarray, limit: int, seed: int
) -> tuple[np.ndarray | slice, np.ndarray | None]:
    """Positions (in order) of at most about ``limit`` rows, and their weights: every fraud,
    and an even random share of the legitimate rows weighted by the inverse of that share,
    so the weighted class totals stay those of all the rows. Every row (a slice: no copy),
    unweighted (None), when they fit, or when the frauds alone would leave room for few
    legitimate rows, each then weighing too much."""
    n = len(labels)
    fraud = labels.astype(bool)
    frauds = int(fraud.sum())
    if n <= limit or limit - frauds < limit // 10:
        return slice(0, n), None
    share = (limit - frauds) / (n - frauds)
    kept = fraud | (np.random.default_rng(seed).random(n) < share)
    rows = np.flatnonzero(kept)
    return rows, np.where(fraud[rows], 1.0, 1.0 / share).astype(np.float32)


def _check_labels(name: str, labels: np.ndarray) -> None:
    frauds = int(labels.sum())
    if frauds == 0 or frauds == len(labels):
        raise TrainingDataError(
            f"the {name} ({len(labels)} rows) has {frauds} frauds: a single class cannot be "
            "learned; use a longer window (--train-days) or more history"
        )


def fit_model(
    features: np.ndarray,
    labels: np.ndarray,
    amounts: np.ndarray,
    feature_names: list[str],
    config: TrainingConfig,
    progress: Progress = lambda _: None,
    event_ms: np.ndarray | None = None,
) -> FittedModel:
    """Rows must be in time order (the validation slice is the most recent one).

    ``progress`` hears where the search and the refit are, every 100 rounds.
    ``event_ms``, the rows' times (epoch ms), turns ``config.review_capacity`` into a
    number of reviews on the validation slice; it is required with one.
    """
    cut = config.validation_start(len(labels))
    _check_labels("training window", labels)
    _check_labels("fitting part (the start of the training window)", labels[:cut])
    _check_labels("validation slice (the end of the training window)", labels[cut:])
    sample, weight = search_sample(labels[:cut], config.search_rows, config.seed)
    fit = xgb.DMatrix(
        features[sample], label=labels[sample], weight=weight, feature_names=feature_names
    )
    valid = xgb.DMatrix(features[cut:], label=labels[cut:], feature_names=feature_names)
    imbalance = (cut - labels[:cut].sum()) / labels[:cut].sum()
    base = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_bin": config.max_bin,
        "max_depth": config.max_depth,
        "eta": config.learning_rate,
        "min_child_weight": 1,
        "subsample": 0.9,
        "colsample_bytree": 0.9,
        "seed": config.seed,
        "nthread": config.nthread,
    }
    grid = [
        dict(zip(_TUNE_GRID, values, strict=True))
        for values in itertools.product(*_TUNE_GRID.values())
    ]
    # the defaults first: the reference the others must clearly beat
    tuned: list[dict[str, Any]] = [{}] + [
        g for g in grid if any(base[k] != v for k, v in g.items())
    ]
    candidates = [
        {**base, **changes, "scale_pos_weight": weight}
        for changes in (tuned if config.tune else [{}])
        for weight in (1.0, round(math.sqrt(imbalance), 3))
    ]

    best, tried, scores, selection = _search(candidates, fit, valid, labels[cut:], config, progress)
    ap, params, rounds = best.validation_ap, best.params, best.stopping.best_rounds
    described, search_rows = [c.describe() for c in tried], fit.num_row()
    # the search's matrices (held by each candidate's stopping rule) are not needed by the
    # refit: freed first, they are not in its memory peak (0.3 GB on a 1.27M-row window)
    del best, tried, fit, valid
    review, decline, _ = choose_cost_thresholds(
        scores,
        labels[cut:],
        amounts[cut:],
        config.cost,
        max_reviews=_validation_reviews(config.review_capacity, event_ms, cut),
    )
    full = xgb.DMatrix(features, label=labels, feature_names=feature_names)
    booster = xgb.train(
        params,
        full,
        num_boost_round=rounds,
        callbacks=[_RefitProgress(rounds, prefixed(progress, "refit on the whole window"))],
        verbose_eval=False,
    )
    return FittedModel(
        booster=booster,
        params=params,
        rounds=rounds,
        validation_ap=ap,
        # "never act" stays above every score: clamped to 1.0 a score of 1.0 would act
        thresholds=Thresholds(review=min(review, NEVER_ACT), decline=min(decline, NEVER_ACT)),
        candidates=described,
        selection=selection,
        search_rows=search_rows,
    )


def _validation_reviews(capacity: int | None, event_ms: np.ndarray | None, cut: int) -> float:
    """Reviews the validation slice (rows from ``cut``) may send: ``capacity`` a day."""
    if capacity is None:
        return math.inf
    if event_ms is None:
        raise TypeError("fit_model needs event_ms to apply a review_capacity")
    return capacity * (int(event_ms[-1]) - int(event_ms[cut])) / 86_400_000


def _search(
    candidates: list[dict[str, Any]],
    fit: xgb.DMatrix,
    valid: xgb.DMatrix,
    valid_labels: np.ndarray,
    config: TrainingConfig,
    progress: Progress,
) -> tuple[_Candidate, list[_Candidate], np.ndarray, dict[str, Any]]:
    """The best candidate, trained to its early stop; every candidate tried; the best's
    validation scores; how it was chosen.

    Every candidate trains for the first rounds only; the best of them trains on. A
    one-rung successive halving: most of the round budget goes to the winner. The first
    candidate is the reference: the best replaces it only when its gain clears
    ``config.min_gain_se`` standard errors.
    """
    screen_rounds = min(
        config.validation_every * math.ceil(config.screen_rounds / config.validation_every),
        config.max_rounds,
    )
    tried = []
    screened = []
    for n, params in enumerate(candidates, 1):
        stopping = _EarlyStopping(
            valid,
            every=config.validation_every,
            patience=config.early_stopping_rounds,
            max_rounds=config.max_rounds,
            progress=prefixed(
                progress, f"candidate {n}/{len(candidates)} (screen {screen_rounds})"
            ),
        )
        booster = xgb.train(
            params,
            fit,
            num_boost_round=screen_rounds,
            callbacks=[stopping],
            verbose_eval=False,
        )
        tried.append(_Candidate(params, stopping, booster))
        screened.append(tried[-1].validation_scores(valid, valid_labels))
    winner, selection = _choose(tried, screened, valid_labels, config, progress)
    best, scores = tried[winner], screened[winner]
    done = best.booster.num_boosted_rounds()
    if not best.stopping.stopped and done < config.max_rounds:
        best.stopping.progress = prefixed(progress, "the best candidate trains on")
        best.booster = xgb.train(
            best.params,
            fit,
            num_boost_round=config.max_rounds - done,
            xgb_model=best.booster,
            callbacks=[best.stopping],
            verbose_eval=False,
        )
        scores = best.validation_scores(valid, valid_labels)
    return best, tried, scores, selection


def _choose(
    tried: list[_Candidate],
    screened: list[np.ndarray],
    valid_labels: np.ndarray,
    config: TrainingConfig,
    progress: Progress,
) -> tuple[int, dict[str, Any]]:
    """The chosen candidate's index, and why (numbered from 1, as in the progress)."""
    highest = max(range(len(tried)), key=lambda i: tried[i].validation_ap)  # first on a tie
    if highest == 0 or config.min_gain_se == 0:
        return highest, {"highest": highest + 1, "chosen": highest + 1}
    gain = tried[highest].validation_ap - tried[0].validation_ap
    se = average_precision_gain_se(screened[0], screened[highest], valid_labels, config.seed)
    chosen = highest if gain > config.min_gain_se * se else 0
    if chosen == 0:
        gain_text, se_text = apart(gain, se)
        progress(
            f"kept candidate 1 (the defaults): candidate {highest + 1}'s validation AP gain "
            f"{gain_text} is within {config.min_gain_se:g} standard error ({se_text})"
        )
    record = {"highest": highest + 1, "chosen": chosen + 1, "gain": gain, "gain_se": se}
    return chosen, record
