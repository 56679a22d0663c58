"""Numbers in messages and reports: two that differ never print the same."""

from __future__ import annotations

__all__ = ["apart"]

# metrics computed two ways (a mean of per-day shares, say) differ in the last bits
SAME = 1e-12


def apart(mine: float, theirs: float) -> tuple[str, str]:
    """Both numbers to four places, or to as many as it takes to tell them apart: "0.7511
    does not beat 0.7511" hides which is higher, and a gain of 0.0030 "within" a standard
    error of 0.0030 hides which is larger."""
    if abs(mine - theirs) <= SAME:
        return f"{mine:.4f}", f"{theirs:.4f}"
    for places in (4, 6, 8, 10, 12):
        a, b = f"{mine:.{places}f}", f"{theirs:.{places}f}"
        if a != b:
            return a, b
    return f"{mine:.12f}", f"{theirs:.12f}"
