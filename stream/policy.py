"""The decision policy: score thresholds from the model metadata give the decision."""

from __future__ import annotations

import numpy as np

from batch_training.model_metadata import Thresholds
from stream.records import Decision

__all__ = ["decide_batch"]


def decide_batch(scores: np.ndarray, thresholds: Thresholds) -> list[tuple[Decision, list[str]]]:
    """Decision and reason codes per score, in input order."""
    # compared as float64, as the Python floats of scores.tolist() would be
    scores = np.asarray(scores, dtype=np.float64)
    out: list[tuple[Decision, list[str]]] = [("approve", []) for _ in range(len(scores))]
    decline, review = thresholds.decline, thresholds.review
    # only the flagged rows (a minority) pay for formatting a reason; review <= decline
    for i in np.flatnonzero(scores >= review).tolist():
        score = float(scores[i])
        if score >= decline:
            out[i] = ("decline", [f"score {score:.3f} >= decline threshold {decline:.3f}"])
        else:
            out[i] = ("review", [f"score {score:.3f} >= review threshold {review:.3f}"])
    return out
