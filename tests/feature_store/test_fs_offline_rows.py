"""Features for some rows only: the same values as over the whole history, less work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feature_store import CORE_FEATURE_SET, canonical_order, compute_offline_features
from feature_store.catalogue import EXTENDED_FEATURE_SET
from feature_store.columns import _handbook_tie_break
from feature_store.definitions import FeatureSet
from feature_store.offline import epoch_ms, offline_feature_matrix


def _tied_history(seed: int, *, integer_ids: bool = False) -> pd.DataFrame:
    """Coarse clock (many exact ties, within and across entities), late labels, and a
    tie_break column that disagrees with the ids."""
    rng = np.random.default_rng(seed)
    n = 4000
    seconds = np.sort(rng.integers(0, 60 * 86_400, n)) // 600 * 600
    times = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(seconds, unit="s")
    fraud = rng.random(n) < 0.05
    delay = pd.to_timedelta(rng.integers(0, 12 * 86_400, n), unit="s")
    ids = rng.permutation(n)
    return pd.DataFrame(
        {
            "transaction_id": ids if integer_ids else [f"tx{i:05d}" for i in ids],
            "event_time": times,
            "card_id": rng.choice([f"c{i}" for i in range(30)], n),
            "merchant_id": rng.choice([f"m{i}" for i in range(12)], n),
            "amount": np.round(rng.lognormal(3, 1.2, n), 2),
            "channel": rng.choice(["online", "pos"], n),
            "is_fraud": fraud.astype(np.int8),
            "label_time": pd.Series(times + delay).where(fraud),
            "tie_break": rng.integers(0, 3, n),
        },
        index=rng.permutation(n) + 100,  # an index that is not the positions
    )


def _lexsort_order(history: pd.DataFrame) -> np.ndarray:
    """The definition: (event_time, tie_break, transaction_id), ids in their own type."""
    column = history["transaction_id"]
    ids = column.to_numpy() if pd.api.types.is_integer_dtype(column) else column.to_numpy(str)
    return np.lexsort((ids, history["tie_break"].to_numpy(), epoch_ms(history["event_time"])))


@pytest.mark.parametrize("integer_ids", [False, True])
def test_canonical_order_sorts_only_ties_by_id_but_equals_the_full_sort(
    integer_ids: bool,
) -> None:
    history = _tied_history(1, integer_ids=integer_ids)
    np.testing.assert_array_equal(canonical_order(history), _lexsort_order(history))
    plain = history.drop(columns=["tie_break"])
    column = plain["transaction_id"]
    ids = column.to_numpy() if integer_ids else column.to_numpy(str)
    expected = np.lexsort((ids, epoch_ms(plain["event_time"])))
    np.testing.assert_array_equal(canonical_order(plain), expected)


@pytest.mark.parametrize("feature_set", [CORE_FEATURE_SET, EXTENDED_FEATURE_SET])
def test_features_of_some_rows_equal_those_of_the_whole_history(
    feature_set: FeatureSet,
) -> None:
    history = _tied_history(2)
    full = compute_offline_features(feature_set, history)
    rng = np.random.default_rng(3)
    ts = epoch_ms(history["event_time"])
    late = np.flatnonzero(ts >= np.quantile(ts, 0.7))  # a window whose context starts later
    for rows in (late, rng.permutation(len(history))[:700], np.array([5, 5, 0]), late[:0]):
        part = compute_offline_features(feature_set, history, rows=rows)
        assert part.index.equals(history.index[rows])
        # the same windows; rolling sums may differ in the last bits when their running
        # (compensated) state starts later
        pd.testing.assert_frame_equal(part, full.iloc[rows], rtol=1e-12, atol=1e-12)


def test_the_training_matrix_is_the_float64_features_cast_to_float32() -> None:
    history = _tied_history(4)
    rows = np.arange(0, len(history), 3)
    matrix = offline_feature_matrix(CORE_FEATURE_SET, history, rows, dtype=np.float32)
    assert matrix.dtype == np.float32
    expected = compute_offline_features(CORE_FEATURE_SET, history).to_numpy()[rows]
    np.testing.assert_array_equal(matrix, expected.astype(np.float32))


def test_rows_outside_the_history_are_refused() -> None:
    history = _tied_history(5)
    for rows in (np.array([0, len(history)]), np.array([-1])):
        with pytest.raises(IndexError, match="positions"):
            offline_feature_matrix(CORE_FEATURE_SET, history, rows)


def _handbook_reference(frame: pd.DataFrame) -> np.ndarray:
    """The handbook's own per-customer sort, customer by customer."""
    times = frame["TX_DATETIME"].to_numpy()
    tie_break = np.zeros(len(frame), dtype=np.int64)
    for positions in frame.groupby("CUSTOMER_ID", sort=False).indices.values():
        order = pd.Series(times[positions]).sort_values().index.to_numpy()
        tie_break[positions[order]] = np.arange(len(positions))
    return tie_break


@pytest.mark.parametrize("seed", range(6))
def test_handbook_tie_break_equals_its_per_customer_sort(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    seconds = rng.integers(0, int(rng.integers(2, 400)), n)  # few distinct times: many ties
    frame = pd.DataFrame(
        {
            "CUSTOMER_ID": rng.integers(0, int(rng.integers(1, 40)), n).astype(float),
            "TX_DATETIME": pd.Timestamp("2018-04-01") + pd.to_timedelta(seconds, unit="s"),
        },
        index=rng.permutation(n),
    )
    if seed % 2:
        frame.loc[rng.random(n) < 0.05, "CUSTOMER_ID"] = np.nan
    np.testing.assert_array_equal(_handbook_tie_break(frame), _handbook_reference(frame))
