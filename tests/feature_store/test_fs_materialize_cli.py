"""`fraud features materialize` warms real Redis from a history file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import redis
from click.testing import CliRunner

from fraud_cli.main import cli


def test_materialize_builds_the_online_state(
    small_history: pd.DataFrame,
    redis_url: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    history = small_history.iloc[:2000].copy()
    history["card_id"] = unique + history["card_id"]
    history["merchant_id"] = unique + history["merchant_id"]
    path = tmp_path / "history.parquet"
    history.to_parquet(path)
    monkeypatch.setenv("FRAUD_REDIS_URL", redis_url)
    result = CliRunner().invoke(cli, ["features", "materialize", "--history", str(path)])
    assert result.exit_code == 0, result.output
    assert "materialized 2,000 rows" in result.output
    client = redis.Redis.from_url(redis_url)
    card = history["card_id"].iloc[0]
    logged = client.zcard(f"fraud:fs4:log:card:{card}")
    assert logged == (history["card_id"] == card).sum()
    client.close()


def test_materialize_without_redis_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAUD_REDIS_URL", raising=False)
    path = tmp_path / "h.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(path)
    result = CliRunner().invoke(cli, ["features", "materialize", "--history", str(path)])
    assert result.exit_code != 0
    assert "FRAUD_REDIS_URL" in result.output
