"""The README's first command, for real at a small size: every event accounted for."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from fraud_cli.demo import DemoConfig, run_demo


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_demo_accounts_for_every_event(tmp_path: Path) -> None:
    messages: list[str] = []
    before = set(_children(os.getpid()))  # session fixtures (broker, redis) may already run
    summary = run_demo(
        DemoConfig(
            duration_s=6,
            rate=150,
            cards=500,
            merchants=60,
            history_days=14,
            delay_days=2,
            test_days=4,
            workdir=tmp_path,
        ),
        say=messages.append,
    )
    assert summary["events_in"] >= 850
    assert summary["lost"] == 0
    assert summary["decisions"] + summary["dlq"] == summary["events_in"]
    assert summary["dlq"] >= 1  # the demo injects malformed events on purpose
    assert summary["conflicting_decisions"] == 0
    assert summary["model_version"] == 1
    assert summary["latency_ms"]["p99"] < 1000
    assert summary["degraded"] == 0
    assert summary["alerts"] == sum(summary["by_decision"][d] for d in ("review", "decline"))
    for key in ("throughput_tps", "alert_precision", "fraud_recall"):
        assert key in summary
    # every process it started is gone, and the broker's port is released
    assert set(_children(os.getpid())) <= before
    port = int(re.search(r"broker on 127\.0\.0\.1:(\d+)", messages[0]).group(1))  # type: ignore[union-attr]
    assert _port_is_free(port)
    assert "worker up" in " ".join(messages)
