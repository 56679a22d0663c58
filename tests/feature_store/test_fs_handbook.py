"""The handbook preset reproduces the handbook's 14 baseline features on all 1.75M rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from fraud_cli.main import cli


def test_handbook_features_match_on_every_row(tmp_path: Path, handbook_dir: Path) -> None:
    out = tmp_path / "handbook_features.parquet"
    result = CliRunner().invoke(
        cli,
        [
            "features",
            "build",
            "--history",
            str(handbook_dir / "transactions_raw.parquet"),
            "--feature-set",
            "handbook",
            "--columns",
            "handbook",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    ours = pd.read_parquet(out)
    reference = pd.read_parquet(handbook_dir / "transactions_transformed.parquet")
    expected_columns = [
        "TRANSACTION_ID",
        "TX_DURING_WEEKEND",
        "TX_DURING_NIGHT",
        *[f"CUSTOMER_ID_{k}_{d}DAY_WINDOW" for d in (1, 7, 30) for k in ("NB_TX", "AVG_AMOUNT")],
        *[f"TERMINAL_ID_{k}_{d}DAY_WINDOW" for d in (1, 7, 30) for k in ("NB_TX", "RISK")],
    ]
    assert list(ours.columns) == expected_columns
    assert len(ours) == len(reference) == 1_754_155
    reference = reference.set_index("TRANSACTION_ID").loc[ours["TRANSACTION_ID"]]
    for column in expected_columns[1:]:
        diff = np.abs(ours[column].to_numpy(np.float64) - reference[column].to_numpy(np.float64))
        assert diff.max() <= 1e-6, f"{column}: max abs diff {diff.max()}"


def test_features_build_refuses_an_out_it_cannot_write_before_reading(tmp_path: Path) -> None:
    """Refused before the (minutes-long) read and compute, not after; `dir/` names a
    directory, where it wrote a file named `dir`."""
    history = tmp_path / "history.parquet"
    pd.DataFrame({"transaction_id": [1]}).to_parquet(history)
    build = ["features", "build", "--history", str(history), "--out"]
    for out, message in [
        (f"{tmp_path}/out/", f"(e.g. {tmp_path}/out/features.parquet)"),
        (str(tmp_path), "is a directory; give a Parquet file's path"),
        (f"{tmp_path}/f.csv", "it is written as Parquet; name the file f.parquet"),
        (str(history), "is the history"),  # it replaced the history with the features
    ]:
        result = CliRunner().invoke(cli, [*build, out])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "reading" not in result.output
    assert not (tmp_path / "out").exists()
