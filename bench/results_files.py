"""Where the benchmarks write their results: one JSON line and a plot, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

__all__ = ["RESULTS", "save_figure", "write_result"]

RESULTS = Path(__file__).resolve().parent / "results"


def save_figure(fig: Figure, name: str) -> Path:
    """Lay ``fig`` out, write it to bench/results/<name>.png, close it; the path from the
    repository root, for the result to name."""
    import matplotlib.pyplot as plt  # here: each benchmark picks the backend before pyplot

    RESULTS.mkdir(exist_ok=True)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.relative_to(RESULTS.parents[1])


def write_result(name: str, result: dict[str, Any]) -> None:
    """Write ``result`` to bench/results/<name>.json as one JSON line, and print it: a
    benchmark's last line."""
    line = json.dumps(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(line + "\n")
    print(line)
