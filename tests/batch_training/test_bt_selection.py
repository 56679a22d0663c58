"""The noise of a validation gain in average precision (the search's one-standard-error rule)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from batch_training.errors import TrainingConfigError
from batch_training.selection import _SortedScores, average_precision_gain_se
from batch_training.train import TrainingConfig


def _scored(n: int, seed: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.02).astype(np.int8)
    return np.round(rng.random(n) + signal * labels, 2), labels  # rounded: many ties


def test_unit_weights_give_sklearns_average_precision_ties_included() -> None:
    scores, labels = _scored(5_000, seed=1, signal=0.4)
    assert len(np.unique(scores)) < 200
    ap = _SortedScores(scores, labels).average_precision(np.ones(len(labels), dtype=np.int64))
    assert ap == pytest.approx(average_precision_score(labels, scores), abs=1e-12)


def test_the_gain_standard_error_matches_a_resampling_bootstrap() -> None:
    reference, labels = _scored(4_000, seed=2, signal=0.5)
    candidate = reference + np.random.default_rng(3).normal(0, 0.1, len(labels))
    se = average_precision_gain_se(reference, candidate, labels, seed=7)
    rng = np.random.default_rng(11)
    gains = []
    for _ in range(300):  # the textbook bootstrap: rows drawn with replacement
        rows = rng.integers(0, len(labels), len(labels))
        gains.append(
            average_precision_score(labels[rows], candidate[rows])
            - average_precision_score(labels[rows], reference[rows])
        )
    assert 0.75 < se / float(np.std(gains, ddof=1)) < 1.33
    assert average_precision_gain_se(reference, candidate, labels, seed=7) == se
    assert average_precision_gain_se(reference, reference, labels, seed=7) == 0.0


def test_a_negative_margin_is_refused() -> None:
    with pytest.raises(TrainingConfigError, match=r"min_gain_se=-1\.0 must be at least 0"):
        TrainingConfig(min_gain_se=-1.0)
