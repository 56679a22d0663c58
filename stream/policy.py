"""The decision policy: score thresholds from the model metadata give the decision."""

from __future__ import annotations

import numpy as np

from batch_training.registry import Thresholds
from stream.records import Decision

__all__ = ["decide_batch"]


def decide_batch(scores: np.ndarray, thresholds: Thresholds) -> list[tuple[Decision, list[str]]]:
    """Decision and reason codes per score, in input order."""
    out: list[tuple[Decision, list[str]]] = []
    for score in scores.tolist():
        if score >= thresholds.decline:
            out.append(
                ("decline", [f"score {score:.3f} >= decline threshold {thresholds.decline:.3f}"])
            )
        elif score >= thresholds.review:
            out.append(
                ("review", [f"score {score:.3f} >= review threshold {thresholds.review:.3f}"])
            )
        else:
            out.append(("approve", []))
    return out
