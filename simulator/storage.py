"""Writing simulated histories to Parquet, byte-for-byte reproducibly."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["write_history"]


def write_history(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``path`` as Parquet, creating parent directories; returns the path.

    Same frame, same bytes: the index is dropped and the writer settings are pinned. The file
    appears atomically, so a reader never sees half of it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(table, tmp, compression="zstd", write_statistics=True)
    tmp.replace(target)
    return target
