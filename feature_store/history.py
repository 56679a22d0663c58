"""Reading a transaction history into the frame both engines expect."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from feature_store.errors import HistoryColumnsError

__all__ = ["read_history"]


def read_history(path: Path) -> pd.DataFrame:
    """A Parquet file or directory of Parquet files, with ``event_time`` as UTC datetimes."""
    if not path.exists():
        raise FileNotFoundError(
            f"history {str(path)!r} does not exist; create one with `fraud simulate history`"
        )
    frame = pd.read_parquet(path)
    if "event_time" not in frame.columns:
        raise HistoryColumnsError(
            f"history {str(path)!r} has no event_time column; columns: {sorted(frame.columns)}"
        )
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame
