"""The promotion gate: a candidate replaces the champion only if it is better on the
same time-correct test window."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GateDecision", "promotion_gate"]


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str


def promotion_gate(
    candidate: dict[str, float], champion: dict[str, float] | None, *, cp_tolerance: float
) -> GateDecision:
    """Average precision must rise; card precision@100 may not fall by more than the tolerance."""
    if champion is None:
        return GateDecision(True, "no champion yet: the first model passes")
    ap, ap_old = candidate["average_precision"], champion["average_precision"]
    cp, cp_old = candidate["card_precision_at_100"], champion["card_precision_at_100"]
    if not ap > ap_old:
        return GateDecision(
            False, f"average precision {ap:.4f} does not beat the champion's {ap_old:.4f}"
        )
    if cp < cp_old - cp_tolerance:
        return GateDecision(
            False,
            f"card precision@100 {cp:.4f} fell more than {cp_tolerance} below the "
            f"champion's {cp_old:.4f}",
        )
    return GateDecision(
        True,
        f"average precision {ap:.4f} > champion's {ap_old:.4f}; card precision@100 "
        f"{cp:.4f} vs {cp_old:.4f} (tolerance {cp_tolerance})",
    )
