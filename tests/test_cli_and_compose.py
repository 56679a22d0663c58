"""The CLI's surface, and docker-compose.yml checked against it and the settings."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import click
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from batch_training.registry import ModelRegistry
from embedded import EmbeddedBroker
from fraud_cli.main import cli
from fraud_cli.settings import TrainerSettings, env_names
from stream.settings import StreamSettings

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "fraud")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert len(result.output.splitlines()) > 3


def test_the_main_commands_exist() -> None:
    commands = {" ".join(p) for p in _commands(cli)}
    assert {"simulate history", "simulate live", "train", "stream", "demo"} <= commands


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def _our_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return {n: s for n, s in services.items() if s.get("command", [None])[0] == "fraud"}


def test_compose_has_the_whole_stack_with_health_checks() -> None:
    services = _compose()["services"]
    expected = {
        "kafka",
        "redis",
        "postgres",
        "stream",
        "simulator",
        "trainer",
        "review",
        "archiver",
    }
    assert expected <= set(services)
    assert "postgres" in services["review"]["depends_on"]
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test") or check.get("disable"), f"{name} has no health check"
    assert "--every" in services["trainer"]["command"]
    # a scheduled run stops at its next progress report: docker's 10 s default may be short
    assert services["trainer"]["stop_grace_period"] == "120s"


@pytest.mark.parametrize(
    ("name", "settings"), [("stream", StreamSettings), ("trainer", TrainerSettings)]
)
def test_compose_services_write_their_paths_in_their_volume(
    name: str, settings: type[StreamSettings | TrainerSettings]
) -> None:
    """The image runs as a non-root user in a root-owned /app: a relative default there
    (faust's data_dir, the registry) cannot be created, so the service would not start."""
    assert "\nUSER fraud\n" in (ROOT / "Dockerfile").read_text()
    service = _compose()["services"][name]
    mounts = [volume.split(":")[1] for volume in service["volumes"]]
    relative = [
        field
        for field, info in settings.model_fields.items()
        if isinstance(info.default, Path) and not info.default.is_absolute()
    ]
    assert relative  # the check checks something
    for field in relative:
        value = service["environment"].get(f"FRAUD_{field.upper()}")
        assert value is not None, f"{name} leaves FRAUD_{field.upper()} at its relative default"
        assert any(Path(value).is_relative_to(m) for m in mounts), (field, value, mounts)


def test_compose_retrains_on_the_archive_the_archiver_fills() -> None:
    """The scheduled trainer reads the offline store the archiver appends to, seeded once
    by the one-shot history, not a frozen file: each run sees the newer days."""
    services = _compose()["services"]
    archive = services["archiver"]["environment"]["FRAUD_ARCHIVE_DIR"]
    seed = services["history"]["command"]
    assert seed[seed.index("--format") + 1] == "archive"
    assert seed[seed.index("--out") + 1] == archive
    assert services["trainer"]["environment"]["FRAUD_HISTORY"] == archive
    assert services["stream"]["environment"]["FRAUD_WARM_HISTORY"] == archive
    # the archiver starts after the seed, which only fills a missing or empty directory
    assert services["archiver"]["depends_on"]["history"] == {
        "condition": "service_completed_successfully"
    }


def test_compose_traffic_fits_the_trainers_and_the_warm_ups_row_limits(tmp_path: Path) -> None:
    """The seed and the live simulator's one day stay under the limits, so the stack keeps
    retraining (a simulator restarted for ever at 200 events/s would pass them)."""
    services = _compose()["services"]
    seed = list(services["history"]["command"])
    seed[seed.index("--out") + 1] = str(tmp_path / "seed")
    seeded = CliRunner().invoke(cli, seed[1:])
    assert seeded.exit_code == 0, seeded.output
    seed_rows = sum(len(pd.read_parquet(p)) for p in (tmp_path / "seed").rglob("*.parquet")
                    if p.parent.parent.name == "transactions")  # fmt: skip
    live = services["simulator"]
    assert live["restart"] == "no"
    command = live["command"]
    live_rows = float(command[command.index("--rate") + 1]) * float(
        command[command.index("--duration") + 1]
    )
    limits = (TrainerSettings().max_history_rows, StreamSettings().warm_max_rows)
    assert seed_rows + live_rows <= min(limits), (seed_rows, live_rows, limits)


def _parse_fraud_command(argv: list[str]) -> None:
    """Parse ``fraud ARGV...`` as the CLI would: an unknown subcommand, option or bad
    value raises."""
    assert argv[0] == "fraud"
    rest = list(argv[1:])
    command: click.Command = cli
    while isinstance(command, click.Group):
        token = rest.pop(0)
        assert token in command.commands, f"{token!r} is not a fraud subcommand"
        command = command.commands[token]
    command.make_context(command.name or "", rest)


@pytest.mark.parametrize("name", sorted(_our_services()))
def test_compose_commands_parse_as_real_subcommands(name: str) -> None:
    _parse_fraud_command(list(_our_services()[name]["command"]))


def test_the_kubernetes_cronjob_is_the_compose_trainer_run_daily() -> None:
    job = yaml.safe_load((ROOT / "deploy/kubernetes/trainer-cronjob.yaml").read_text())
    assert job["kind"] == "CronJob"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"  # runs never overlap
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "command" not in container  # it would replace the image's entrypoint, tini
    _parse_fraud_command(container["args"])
    assert container["args"][:2] == ["fraud", "train"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) <= env_names()
    trainer = _compose()["services"]["trainer"]
    assert env["FRAUD_HISTORY"] == trainer["environment"]["FRAUD_HISTORY"]
    assert f"{pod['terminationGracePeriodSeconds']}s" == trainer["stop_grace_period"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    paths = [env["FRAUD_HISTORY"], env["FRAUD_REGISTRY_DIR"]]
    assert all(any(p.startswith(m) for m in mounts) for p in paths)
    # the row limit refuses a history whose run would pass the pod's memory limit
    # (0.55 GB per million rows, measured on a 10M archive), with room to spare
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    assert int(env["FRAUD_MAX_HISTORY_ROWS"]) * 0.55e-6 <= 0.9 * int(limit[:-2]) * 2**30 / 1e9


def test_the_cronjob_runs_as_the_images_user_on_a_volume_made_writable_to_it() -> None:
    """A new volume is owned by root; the image's user could not write the registry."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = re.search(r"useradd --uid (\d+) --gid (\d+)", dockerfile)
    assert uid is not None
    job = yaml.safe_load((ROOT / "deploy/kubernetes/trainer-cronjob.yaml").read_text())
    security = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsUser"] == int(uid.group(1))
    assert security["runAsGroup"] == security["fsGroup"] == int(uid.group(2))
    assert f"--gid {uid.group(2)} fraud" in dockerfile  # the group exists with that id


def test_the_image_forwards_signals_to_a_process_that_is_not_pid_1() -> None:
    """As PID 1, `fraud train` would ignore its second SIGTERM (the kernel drops a signal
    PID 1 has no handler for), which the README says ends it at once."""
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert entrypoint is not None
    assert json.loads(entrypoint.group(1)) == ["/usr/bin/tini", "--"]
    services = _our_services()
    assert all("entrypoint" not in service for service in services.values())


@pytest.mark.parametrize("name", sorted(_our_services()))
def test_compose_sets_only_variables_the_settings_read(name: str) -> None:
    env = _our_services()[name].get("environment", {})
    unknown = set(env) - env_names()
    assert not unknown, f"{name} sets {unknown}, which no settings class reads"


def test_readme_opens_with_the_two_commands_and_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block
    assert "make test" in first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    missing = {name for name in env_names() if f"`{name}`" not in readme}
    assert not missing, f"README's configuration table lacks {sorted(missing)}"


def test_the_image_copies_every_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = (ROOT / "Dockerfile").read_text()
    missing = [p for p in packages if f"COPY {p} {p}" not in dockerfile]
    assert not missing, f"the Dockerfile does not copy {missing}"


def test_a_setting_the_settings_refuse_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRAUD_MAX_HISTORY_ROWS", "20M")
    result = CliRunner().invoke(cli, ["train", "--history", "h.parquet"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: bad setting: FRAUD_MAX_HISTORY_ROWS='20M': ")
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("variable", "command"),
    [
        ("FRAUD_REGISTRY_DIR", ["train", "--history", "h.parquet"]),
        ("FRAUD_HISTORY", ["train"]),
        ("FRAUD_DATA_DIR", ["stream"]),
    ],
)
def test_an_empty_path_setting_is_refused_not_taken_as_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, variable: str, command: list[str]
) -> None:
    """A template that fills a variable from an unset one leaves it empty: Path("") would
    put the registry in the working directory, or read it as the history."""
    monkeypatch.setenv(variable, "")
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"Error: bad setting: {variable}='': an empty path; unset the variable for its "
        "default, or give a path"
    )


def test_a_refused_setting_that_may_hold_a_password_is_not_echoed() -> None:
    from pydantic import BaseModel, ValidationError

    from fraud_cli.main import _bad_settings

    class ReviewSettings(BaseModel):  # as if a URL setting had a type the value broke
        review_database_url: int

    with pytest.raises(ValidationError) as refused:
        ReviewSettings(review_database_url="postgresql://alice:hunter2@db/review")  # type: ignore[arg-type]
    message = _bad_settings(refused.value)
    assert message.startswith("bad setting: FRAUD_REVIEW_DATABASE_URL: ")
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("variable", "value", "command", "message"),
    [
        ("FRAUD_KAFKA_BOOTSTRAP", "", ["stream"], "FRAUD_KAFKA_BOOTSTRAP='': not host:port"),
        (
            "FRAUD_KAFKA_BOOTSTRAP",
            "kafka:ninety",
            ["simulate", "live"],
            "FRAUD_KAFKA_BOOTSTRAP='kafka:ninety'",
        ),
        ("FRAUD_KAFKA_BOOTSTRAP", " ", ["review", "serve"], "FRAUD_KAFKA_BOOTSTRAP=' '"),
        ("FRAUD_REDIS_URL", "", ["stream"], "FRAUD_REDIS_URL: not a redis://"),
        ("FRAUD_REDIS_URL", "http://u:hunter2@cache/0", ["stream"], "FRAUD_REDIS_URL: not a"),
    ],
)
def test_an_empty_or_malformed_address_is_refused_not_taken_as_embedded(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, command: list[str], message: str
) -> None:
    """Unset means the embedded broker or the in-memory store; an empty value (a template
    filled from an unset variable) used to mean the same, in production a worker that
    consumes nothing and looks healthy."""
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: bad setting: {message}")
    assert len(result.output.strip().splitlines()) == 1
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("variable", "value", "kept"),
    [
        ("FRAUD_KAFKA_BOOTSTRAP", "h1:9092, h2:9092", "h1:9092,h2:9092"),
        ("FRAUD_KAFKA_BOOTSTRAP", "kafka", "kafka"),  # kafka-python takes port 9092
        ("FRAUD_KAFKA_BOOTSTRAP", "SASL_SSL://b-1.msk.aws:9096", "SASL_SSL://b-1.msk.aws:9096"),
        ("FRAUD_KAFKA_BOOTSTRAP", "[::1]:9092", "[::1]:9092"),
        ("FRAUD_REDIS_URL", "REDIS://:p%40ss@cache:6379/0", "REDIS://:p%40ss@cache:6379/0"),
        ("FRAUD_REDIS_URL", "unix:///run/redis.sock", "unix:///run/redis.sock"),
    ],
)
def test_real_world_addresses_are_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, kept: str
) -> None:
    monkeypatch.setenv(variable, value)
    settings = StreamSettings()
    assert getattr(settings, variable.removeprefix("FRAUD_").lower()) == kept


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FRAUD_REDIS_URL", "redis://:hunter2@cache:sixty/0", "FRAUD_REDIS_URL is not a Redis URL"),
        ("FRAUD_DATA_DIR", "/proc/not-here", "FRAUD_DATA_DIR='/proc/not-here': "),
        ("FRAUD_METRICS_PORT", "<taken>", "FRAUD_METRICS_PORT="),
        ("FRAUD_RULES_FILE", "/nonexistent/rules.yaml", "rules file '/nonexistent/rules.yaml'"),
    ],
)
def test_a_worker_setting_it_cannot_use_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    broker: EmbeddedBroker,
    registry_copy: ModelRegistry,
    tmp_path: Path,
    variable: str,
    value: str,
    message: str,
) -> None:
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))  # where the metrics server binds
    taken.listen()
    monkeypatch.setenv("FRAUD_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("FRAUD_REGISTRY_DIR", str(registry_copy.root))
    monkeypatch.setenv("FRAUD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FRAUD_COMPILE_MODEL", "false")
    monkeypatch.setenv("FRAUD_METRICS_PORT", "0")
    monkeypatch.setenv(variable, value.replace("<taken>", str(taken.getsockname()[1])))
    monkeypatch.setattr("stream.app.tune_gc", lambda: None)  # not in the test process
    try:
        result = CliRunner().invoke(cli, ["stream"])
    finally:
        taken.close()
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {message}"), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("env", "command", "message"),
    [
        ({}, ["review", "serve"], "fraud review serve needs FRAUD_KAFKA_BOOTSTRAP"),
        (
            {},
            ["archive"],
            "fraud archive needs FRAUD_KAFKA_BOOTSTRAP, the Kafka the stream "
            "worker writes to; set it to that Kafka (or try by hand with `fraud broker`)",
        ),
        ({"FRAUD_REVIEW_HOST": ""}, ["review", "serve"], "bad setting: FRAUD_REVIEW_HOST=''"),
        (
            {"FRAUD_REVIEW_HOST": "no-such-host.invalid"},
            ["review", "serve"],
            "FRAUD_REVIEW_HOST / --host 'no-such-host.invalid': ",
        ),
        ({"FRAUD_TOPIC_PREFIX": "a b/"}, ["review", "serve"], "bad setting: FRAUD_TOPIC_PREFIX="),
        ({"FRAUD_TOPIC_PREFIX": "a b/"}, ["stream"], "bad setting: FRAUD_TOPIC_PREFIX="),
        (
            {"FRAUD_REVIEW_SESSION_HOURS": "1e9"},
            ["review", "serve"],
            "bad setting: FRAUD_REVIEW_SESSION_HOURS=",
        ),
        (
            {"FRAUD_REVIEW_DATABASE_URL": "mysql://alice:hunter2@db/review"},
            ["review", "serve"],
            "FRAUD_REVIEW_DATABASE_URL='mysql://alice:***@db/review': only sqlite",
        ),
        (
            {"FRAUD_REVIEW_DATABASE_URL": "not a url hunter2"},
            ["review", "serve"],
            "FRAUD_REVIEW_DATABASE_URL is not a URL",
        ),
        (
            {"FRAUD_REVIEW_DATABASE_URL": "postgresql://alice:hunter2@127.0.0.1:1/review"},
            ["review", "serve"],
            "the review database 'postgresql+psycopg://alice:***@127.0.0.1:1/review' did not",
        ),
    ],
)
def test_a_console_setting_it_cannot_use_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], command: list[str], message: str
) -> None:
    monkeypatch.delenv("FRAUD_KAFKA_BOOTSTRAP", raising=False)
    if env:  # these fail before Kafka is reached
        monkeypatch.setenv("FRAUD_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {message}"), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{file}"], "Error: --out {file} is a file, not a directory; choose another"),
        (["--idle-exit", "nan"], "Invalid value for '--idle-exit': nan is not a number of"),
        (["--idle-exit", "-5"], "Invalid value for '--idle-exit': -5.0 is not a number of"),
        (["--flush-interval", "-1"], "Invalid value for '--flush-interval': -1.0 is not a"),
    ],
)
def test_an_archive_it_could_not_write_or_never_stop_is_refused_before_kafka(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], message: str
) -> None:
    """`--out` a file failed at the first write, minutes later; `--idle-exit nan` never
    stopped, and `-5` stopped at once with exit 0."""
    monkeypatch.setenv("FRAUD_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
    (tmp_path / "a-file").write_text("")
    file = str(tmp_path / "a-file")
    result = CliRunner().invoke(cli, ["archive", *(a.format(file=file) for a in args)])
    assert result.exit_code == 2, result.output
    assert message.format(file=file) in " ".join(result.output.split()), result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [["archive", "--out", "{tmp}/archive"], ["review", "serve", "--port", "{port}"]],
    ids=["archive", "console"],
)
def test_a_kafka_that_does_not_answer_is_one_line_once_the_connect_timeout_is_up(
    tmp_path: Path, command: list[str]
) -> None:
    """kafka-python's bootstrap ended in an 80-line traceback after 30 s; the wait is
    FRAUD_KAFKA_CONNECT_TIMEOUT_S. A real process against a port nobody listens on."""
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        bootstrap = f"127.0.0.1:{closed.getsockname()[1]}"
        env = {
            **os.environ,
            "FRAUD_KAFKA_BOOTSTRAP": bootstrap,
            "FRAUD_KAFKA_CONNECT_TIMEOUT_S": "1.5",
            "FRAUD_REVIEW_DATABASE_URL": f"sqlite:///{tmp_path}/review.db",
        }
        args = [a.format(tmp=tmp_path, port=_free_port()) for a in command]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "fraud_cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"Error: no Kafka broker answered at {bootstrap} within 1.5 s (KafkaTimeoutError); "
        "start it, or correct FRAUD_KAFKA_BOOTSTRAP (FRAUD_KAFKA_CONNECT_TIMEOUT_S waits longer)"
    )
    assert "Traceback" not in done.stderr
    assert took < 20, took  # the default would have waited 30 s


def test_a_backfill_reads_only_the_archives_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A console setting it cannot use stopped a backfill, which never serves anything."""
    monkeypatch.setenv("FRAUD_REVIEW_PORT", "abc")
    monkeypatch.setenv("FRAUD_KAFKA_CONNECT_TIMEOUT_S", "abc")  # nor Kafka's: it connects to none
    monkeypatch.setenv("FRAUD_KAFKA_BOOTSTRAP", "")
    monkeypatch.setenv("FRAUD_ARCHIVE_DIR", str(tmp_path / "archive"))
    pd.DataFrame(
        {
            "transaction_id": ["t1", "t2"],
            "event_time": pd.to_datetime(["2026-10-01T10:00:00Z", "2026-10-02T10:00:00Z"]),
            "card_id": ["c1", "c2"],
            "merchant_id": ["m1", "m1"],
            "amount": [12.5, 40.0],
            "is_fraud": [0, 1],
        }
    ).to_parquet(tmp_path / "history.parquet")
    result = CliRunner().invoke(cli, ["archive", "--backfill", str(tmp_path / "history.parquet")])
    assert result.exit_code == 0, result.output
    assert f"wrote 2 transactions and 1 fraud label to {tmp_path / 'archive'}" in result.output
    serve = CliRunner().invoke(cli, ["review", "serve"])
    assert serve.exit_code == 1
    assert "FRAUD_KAFKA_BOOTSTRAP" in serve.output  # the console's settings still are checked
    archiver = CliRunner().invoke(cli, ["archive"])
    assert archiver.exit_code == 1
    assert "FRAUD_KAFKA_BOOTSTRAP" in archiver.output  # and the archiver's, once it connects


@pytest.mark.parametrize(
    "command",
    [["review", "serve", "--port"], ["demo", "--review", "--review-port"]],
    ids=["console", "demo --review"],
)
def test_a_console_port_in_use_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """uvicorn said so once the console was up: after a whole demo, whose login line then
    named another server's address."""
    monkeypatch.setenv("FRAUD_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, [*command, str(port)])
    assert result.exit_code == 1, result.output
    option = "--port (FRAUD_REVIEW_PORT)" if command[0] == "review" else "--review-port"
    assert result.output == (
        f"Error: cannot listen on 127.0.0.1:{port} (Address already in use): another server "
        f"holds the port; stop it, or give another {option}\n"
    )
    out_of_range = CliRunner().invoke(cli, [*command, "99999"])
    assert out_of_range.exit_code == 2
    assert "99999 is not in the range 1<=x<=65535" in out_of_range.output


def test_an_address_not_of_this_machine_is_refused_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It said another server held the port."""
    monkeypatch.setenv("FRAUD_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
    result = CliRunner().invoke(cli, ["review", "serve", "--host", "192.0.2.1", "--port", "8080"])
    assert result.exit_code == 1, result.output
    assert result.output == (
        "Error: cannot listen on 192.0.2.1:8080 (Cannot assign requested address): give an "
        "address of this machine and a port this user may open\n"
    )
