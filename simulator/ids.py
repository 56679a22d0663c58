"""Transaction ids: unique, deterministic, and revealing nothing about the row.

An id is a bijective 64-bit mix of (day, kind, index) salted by the seed and the
simulation's start (:func:`id_seed`), so ids of one simulation never collide, a fraud
row's id looks like any other, and a live run never re-issues the ids of a history
simulated with the same seed from another start (their days count from different
starts). Rendered as ``tx_`` + two 8-hex-digit halves: the ``_`` keeps any run of digits
under 13, so an id can never look like a card number, and string order equals numeric
order (fixed width, lowercase hex).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa

__all__ = [
    "KIND_CARD_TESTING",
    "KIND_LEGIT",
    "KIND_STOLEN_CARD",
    "format_tx_ids",
    "id_seed",
    "tx_keys",
]

KIND_LEGIT: Final = 0
KIND_STOLEN_CARD: Final = 1
KIND_CARD_TESTING: Final = 2

_INDEX_BITS: Final = 36
_KIND_BITS: Final = 4
_DAY_OFFSET: Final = 1 << 19  # days before the start (lookback) stay non-negative
_HEX: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return np.asarray(z ^ (z >> np.uint64(31)))


def id_seed(seed: int, start_ns: int) -> int:
    """The salt of a simulation's ids: its seed mixed with its start (ns since the epoch)."""
    mixed = _splitmix64(np.array([seed], dtype=np.uint64)) ^ np.array(
        [start_ns % (1 << 64)], dtype=np.uint64
    )
    return int(_splitmix64(mixed)[0])


def tx_keys(*, seed: int, day: int, kind: int, index: np.ndarray) -> np.ndarray:
    """64-bit keys for rows ``index`` of ``kind`` originating on ``day`` (relative to start)."""
    if int(index.max(initial=0)) >= 1 << _INDEX_BITS:
        raise ValueError(f"row index {int(index.max())} exceeds 2**{_INDEX_BITS}")
    salt = _splitmix64(np.array([seed], dtype=np.uint64))
    counter = (
        (np.uint64(day + _DAY_OFFSET) << np.uint64(_INDEX_BITS + _KIND_BITS))
        | (np.uint64(kind) << np.uint64(_INDEX_BITS))
        | index.astype(np.uint64)
    )
    return _splitmix64(counter ^ salt)


def format_tx_ids(keys: np.ndarray) -> pa.Array:
    """``tx_xxxxxxxx_xxxxxxxx`` strings as one Arrow array, built without a Python loop."""
    n = len(keys)
    nibbles = np.empty((n, 16), dtype=np.uint8)
    raw = keys.astype(">u8").view(np.uint8).reshape(n, 8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 0x0F
    width = 20
    out = np.empty((n, width), dtype=np.uint8)
    out[:, 0:3] = np.frombuffer(b"tx_", dtype=np.uint8)
    out[:, 3:11] = _HEX[nibbles[:, :8]]
    out[:, 11] = ord("_")
    out[:, 12:20] = _HEX[nibbles[:, 8:]]
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int64)
    return pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out)]
    )
