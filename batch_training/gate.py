"""The promotion gate: a candidate replaces the champion only if it is better on the
same time-correct test window."""

from __future__ import annotations

from dataclasses import dataclass

from batch_training.formatting import SAME as _SAME
from batch_training.formatting import apart

__all__ = ["GateDecision", "promotion_gate"]


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    # the comparison's verdict when a later rule overrode it (a model an operator rolled
    # back ranks above the champion, and is still not promoted); None: ``promote``
    ranked_above: bool | None = None

    @property
    def passed_comparison(self) -> bool:
        return self.promote if self.ranked_above is None else self.ranked_above


def promotion_gate(
    candidate: dict[str, float], champion: dict[str, float] | None, *, cp_tolerance: float
) -> GateDecision:
    """Average precision must rise; card precision@100 may not fall by more than the tolerance."""
    if champion is None:
        return GateDecision(True, "no champion yet: the first model passes")
    ap, ap_old = candidate["average_precision"], champion["average_precision"]
    cp, cp_old = candidate["card_precision_at_100"], champion["card_precision_at_100"]
    aps, cps = apart(ap, ap_old), apart(cp, cp_old)
    cp_fell = cp < cp_old - cp_tolerance - _SAME
    if cp_fell:
        moved = f"more than the {cp_tolerance} it may fall"
    elif cp < cp_old - _SAME:
        moved = f"within the {cp_tolerance} it may fall"
    else:  # "within the 0.01 it may fall" read as a fall
        moved = "not lower"
    cp_check = f"card precision@100 {cps[0]} vs the champion's {cps[1]}, {moved}"
    if not ap > ap_old + _SAME:
        return GateDecision(
            False,
            f"average precision {aps[0]} does not beat the champion's {aps[1]} (it must be "
            f"higher); {cp_check}",
        )
    if cp_fell:
        return GateDecision(
            False,
            f"average precision {aps[0]} > champion's {aps[1]}, but card precision@100 "
            f"{cps[0]} fell more than {cp_tolerance} below the champion's {cps[1]}",
        )
    return GateDecision(True, f"average precision {aps[0]} > champion's {aps[1]}; {cp_check}")
