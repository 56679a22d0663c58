"""The handbook column preset: its raw columns in ours."""

from __future__ import annotations

import pandas as pd

from feature_store.columns import apply_column_preset


def test_the_handbook_scenarios_are_named_and_unknown_codes_kept() -> None:
    raw = pd.DataFrame(
        {
            "TRANSACTION_ID": range(5),
            "TX_DATETIME": pd.date_range("2018-04-01", periods=5, freq="h"),
            "CUSTOMER_ID": [1, 1, 2, 2, 3],
            "TERMINAL_ID": [9, 8, 9, 8, 9],
            "TX_AMOUNT": [10.0, 300.0, 20.0, 30.0, 40.0],
            "TX_FRAUD": [0, 1, 1, 1, 1],
            "TX_FRAUD_SCENARIO": [0, 1, 2, 3, 7],
        }
    )
    history = apply_column_preset(raw, "handbook")
    assert history["fraud_scenario"].tolist() == [
        "none",
        "amount_over_220",
        "compromised_terminal",
        "compromised_customer",
        "7",
    ]
    assert history["amount"].tolist() == raw["TX_AMOUNT"].tolist()


def test_a_missing_handbook_scenario_reads_unknown() -> None:
    raw = pd.DataFrame(
        {
            "TRANSACTION_ID": range(3),
            "TX_DATETIME": pd.date_range("2018-04-01", periods=3, freq="h"),
            "CUSTOMER_ID": [1, 2, 3],
            "TERMINAL_ID": [9, 9, 9],
            "TX_AMOUNT": [10.0, 20.0, 30.0],
            "TX_FRAUD": [0, 1, 1],
            "TX_FRAUD_SCENARIO": [0, 2, None],
        }
    )
    history = apply_column_preset(raw, "handbook")
    assert history["fraud_scenario"].tolist() == ["none", "compromised_terminal", "unknown"]
