"""The README's first command, for real at a small size: every event accounted for."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from sqlalchemy import func, select

from batch_training.registry import ModelRegistry
from embedded import EmbeddedBroker
from fraud_cli.demo import DemoConfig, run_demo
from fraud_cli.main import cli
from fraud_cli.review_cmd import demo_console
from review.schema import Case, User
from tests.conftest import WaitUntil


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


def _review_in_the_console(
    bootstrap: str, workdir: Path, summary: dict[str, Any], wait_until: WaitUntil
) -> str:
    """What ``fraud demo --review`` serves: the demo's alerts, and verdicts become labels."""
    service, password = demo_console(bootstrap=bootstrap, workdir=workdir)
    with service.background():

        def all_alerts_in() -> bool:
            with service.sessions() as session:
                count = session.scalar(select(func.count()).select_from(Case))
            return bool(count == summary["alerts"])

        wait_until(all_alerts_in, timeout_s=60, what="the demo's alerts in the console")
        client = TestClient(service.app)
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        client.post("/login", data={"username": "demo", "password": password, "csrf_token": token})
        queue = client.get("/queue?sort=score").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', queue).group(1)  # type: ignore[union-attr]
        case_id = re.search(r'href="/cases/(\d+)"', queue).group(1)  # type: ignore[union-attr]
        done = client.post(
            f"/cases/{case_id}/verdict",
            data={"csrf_token": csrf, "kind": "fraud", "comment": "demo"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        with service.sessions() as session:
            case = session.get(Case, int(case_id))
            assert case is not None
            return case.transaction_id


def test_demo_accounts_for_every_event(tmp_path: Path, wait_until: WaitUntil) -> None:
    messages: list[str] = []
    reviewed: list[str] = []
    labels_topic: list[str] = []

    def review(bootstrap: str, workdir: Path, summary: dict[str, Any]) -> None:
        reviewed.append(_review_in_the_console(bootstrap, workdir, summary, wait_until))
        reader = KafkaConsumer(
            "fraud.labels", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
        )

        def label_arrived() -> bool:
            for batch in reader.poll(timeout_ms=200).values():
                labels_topic.extend(json.loads(r.value)["transaction_id"] for r in batch)
            return bool(labels_topic)

        wait_until(label_arrived, timeout_s=30, what="the verdict on fraud.labels")
        reader.close()

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
        then=review,
    )
    assert labels_topic == reviewed
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
    _the_kept_workdir_says_how_to_go_on(tmp_path)


def _the_kept_workdir_says_how_to_go_on(workdir: Path) -> None:
    """Its commands.sh is true: the training commands there make the same model again,
    from the history and from an archive backfilled with it."""
    commands = [
        shlex.split(line)
        for line in (workdir / "commands.sh").read_text().splitlines()
        if line.startswith("fraud ")
    ]
    assert [c[:2] for c in commands] == [
        ["fraud", "broker"],
        ["fraud", "models"],
        ["fraud", "train"],
        ["fraud", "simulate"],
        ["fraud", "archive"],
        ["fraud", "archive"],
        ["fraud", "train"],
    ]
    for command in (commands[2], commands[4], commands[6]):  # the live archiver runs on
        done = CliRunner().invoke(cli, command[1:])
        assert done.exit_code == 0, done.output
    registry = ModelRegistry(workdir / "registry")
    assert registry.versions() == [1, 2, 3]
    assert {registry.metadata(v).model_sha256 for v in (2, 3)} == {
        registry.metadata(1).model_sha256
    }
    listed = CliRunner().invoke(cli, commands[1][1:])
    assert listed.exit_code == 0, listed.output
    _header, *versions = listed.output.splitlines()
    assert [line.split()[0] for line in versions] == ["*", "2", "3"]  # v1 the champion


def test_the_demo_console_starts_again_on_a_kept_workdir(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """`fraud demo --review --workdir DIR` a second time failed at its very end: the demo
    account existed in the first run's database."""
    passwords = []
    for _ in range(2):
        service, password = demo_console(bootstrap=broker.bootstrap, workdir=tmp_path)
        with service.background():  # starts and stops its consumer and relay
            passwords.append(password)
        with service.sessions() as session:
            assert session.scalar(select(func.count()).select_from(User)) == 1
    assert passwords[0] != passwords[1]
