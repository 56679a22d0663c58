"""Choosing among search candidates without chasing validation noise.

The validation slice is the end of one training window: on the handbook about 13,000 rows
with a hundred-odd frauds, so its average precision is noisy, and the highest of two dozen
such scores is mostly luck (the tuned grid's winner scored below the defaults on the test
windows, winning 4 of 16 runs; bench/results/trainer_settings_tune_sample.json). So a
candidate replaces the reference (the defaults) only when its gain clears the gain's own
noise, estimated by a paired bootstrap of the validation rows: the one-standard-error rule.
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_precision_gain_se"]

# enough for a standard error good to about 5 %
_DRAWS = 200


class _SortedScores:
    """One candidate's scores, sorted once, so a bootstrap draw costs a cumulative sum, not
    a sort. Precision matters only where recall steps: at the frauds' tie groups (sklearn's
    average precision steps at distinct scores, tied rows counting together)."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray):
        self.order = np.argsort(-scores, kind="stable")
        ranked = scores[self.order]
        group_ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
        frauds = np.flatnonzero(labels[self.order])
        fraud_group_ends = group_ends[np.searchsorted(group_ends, frauds)]
        # the positions where recall steps, and each fraud's step
        self.steps, self.step_of_fraud = np.unique(fraud_group_ends, return_inverse=True)
        self.fraud_rows = self.order[frauds]

    def average_precision(self, weights: np.ndarray) -> float:
        """Average precision with each row counted ``weights`` times."""
        recalled = np.bincount(
            self.step_of_fraud, weights=weights[self.fraud_rows], minlength=len(self.steps)
        )
        true_positives = np.cumsum(recalled)
        if len(true_positives) == 0 or true_positives[-1] == 0:
            return 0.0
        counted = np.cumsum(weights[self.order])[self.steps].astype(np.float64)
        precision = np.divide(
            true_positives, counted, out=np.zeros_like(counted), where=counted > 0
        )
        return float(recalled @ precision / true_positives[-1])


def average_precision_gain_se(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray, seed: int
) -> float:
    """Standard error of ``candidate``'s average-precision gain over ``reference`` on the
    same rows (a paired bootstrap: each draw takes n rows with replacement, the same for
    both; counted as weights, so no draw copies or sorts the scores). Deterministic for a
    given ``seed``."""
    rng = np.random.default_rng(seed)
    ranked = [_SortedScores(s, labels) for s in (reference, candidate)]
    n = len(labels)
    gains = []
    for _ in range(_DRAWS):
        weights = np.bincount(rng.integers(0, n, n), minlength=n)
        ref, cand = (r.average_precision(weights) for r in ranked)
        gains.append(cand - ref)
    return float(np.std(gains, ddof=1))
