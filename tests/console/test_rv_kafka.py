"""The console against the real (embedded) broker: alerts in, labels out, and the archive."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from embedded import EmbeddedBroker
from feature_store.archive.archiver import TopicArchiver
from feature_store.history import read_history
from fraud_cli.main import cli
from review.feedback import LabelRelay
from review.ingest import IngestConsumer, IngestTopics
from review.schema import CardActivity, Case, IngestError, User, Verdict
from stream.settings import TopicNames
from stream.topics import ensure_topics
from tests.conftest import WaitUntil
from tests.console.conftest import T0, alert, make_console


def _topics(broker: EmbeddedBroker, unique: str) -> TopicNames:
    topics = TopicNames(unique)
    ensure_topics(broker.bootstrap, topics.all(), partitions=2)
    return topics


def _produce(broker: EmbeddedBroker, topic: str, values: Sequence[bytes | None]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for value in values:  # a None value is a tombstone, which needs a key
        producer.send(topic, value, key=None if value is not None else b"tombstone")
    producer.flush()
    producer.close()


def _count(sessions: sessionmaker[Session], model: type[Any]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_alerts_and_decisions_are_ingested_once_and_bad_records_recorded(
    broker: EmbeddedBroker, unique: str, sessions: sessionmaker[Session], wait_until: WaitUntil
) -> None:
    topics = _topics(broker, unique)
    records = [alert(n) for n in range(40)]
    encoded = [msgspec.json.encode(r) for r in records]
    # every alert twice (a worker restart re-sends), and unreadable records among them: a
    # readable one with a bad time used to stop the whole ingest, retrying for ever
    bad = [
        b"{not json",
        msgspec.json.encode(alert(98, event_time="yesterday")),
        msgspec.json.encode(alert(97, event_time="0001-01-01T00:00:00+01:00")),  # overflows
        msgspec.json.encode(alert(99, decision="4111111111111111")),  # a value quoted back
        msgspec.json.encode(alert(96, merchant_id="m" * 500_000)),  # each page grew by it
    ]
    _produce(broker, topics.alerts, [*encoded[:20], *bad, *encoded[20:], *encoded[:15]])
    _produce(broker, topics.decisions, encoded)
    console = make_console(sessions)
    consumer = IngestConsumer(
        console.ingestor,
        bootstrap=broker.bootstrap,
        topics=IngestTopics(alerts=topics.alerts, decisions=topics.decisions),
        group_id=f"{unique}review",
    )
    consumer.start()
    try:
        wait_until(
            lambda: _count(sessions, IngestError) == 5 and _count(sessions, CardActivity) == 40,
            timeout_s=60,
            what="alerts, decisions and the bad record stored",
        )
        assert _count(sessions, Case) == 40
    finally:
        consumer.stop()
    with sessions() as session:
        errors = list(session.scalars(select(IngestError)))
    assert {error.topic for error in errors} == {topics.alerts}
    reasons = " | ".join(error.reason for error in errors)
    assert "json" in reasons.lower()
    assert "'yesterday'" in reasons
    assert "[PAN-REDACTED]" in reasons
    assert "4111111111111111" not in reasons
    assert "Expected `str` of length <= 64 - at `$.merchant_id`" in reasons
    assert max(len(error.reason) for error in errors) < 2_000  # not the 5 MB value quoted


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_verdict_reaches_fraud_labels(
    broker: EmbeddedBroker, unique: str, sessions: sessionmaker[Session], wait_until: WaitUntil
) -> None:
    topics = _topics(broker, unique)
    relay = LabelRelay(sessions, bootstrap=broker.bootstrap, topic=topics.labels)
    relay.start(interval_s=600)  # only a verdict's wake-up sends within the test
    console = make_console(sessions, relay=relay)
    console.ingestor.add_alerts([alert(1), alert(2), alert(3)], now=T0)
    with sessions() as session:
        ids = dict(session.execute(select(Case.transaction_id, Case.id)).all())
    assert console.login("ana") == 303
    for tx, kind in (("tx-00001", "fraud"), ("tx-00002", "legit"), ("tx-00003", "escalate")):
        response = console.client.post(
            f"/cases/{ids[tx]}/verdict",
            data={"csrf_token": console.csrf, "kind": kind, "comment": "checked"},
            follow_redirects=False,
        )
        assert response.status_code == 303
    wait_until(lambda: relay.sent == 2, timeout_s=30, what="both labels acknowledged")
    relay.stop()
    reader = KafkaConsumer(
        topics.labels, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
    )
    labels: dict[str, dict[str, Any]] = {}

    def read() -> bool:
        for batch in reader.poll(timeout_ms=200).values():
            for record in batch:
                body = json.loads(record.value)
                labels[body["transaction_id"]] = body
        return len(labels) >= 2

    wait_until(read, timeout_s=30, what="two labels on fraud.labels")
    reader.close()
    assert set(labels) == {"tx-00001", "tx-00002"}  # an escalation is not a label
    assert labels["tx-00001"]["is_fraud"] is True
    assert labels["tx-00002"]["is_fraud"] is False
    assert labels["tx-00001"]["analyst"] == "ana"
    assert labels["tx-00001"]["label_time"].startswith("2026-11-20T10:00:00")
    with sessions() as session:
        unsent = session.scalar(
            select(func.count()).select_from(Verdict).where(Verdict.label_sent_at.is_(None))
        )
        assert unsent == 1  # only the escalation, which is never sent


def _stops_a_broker_under_a_client(test: Callable[..., None]) -> Callable[..., None]:
    """On SQLite (the refused reconnects' sockets are closed by tests/kafka_connects.py)."""
    on_sqlite: Callable[..., None] = pytest.mark.parametrize(
        "database_url", ["sqlite"], indirect=True
    )(test)
    return on_sqlite


def _give_verdict(sessions: sessionmaker[Session], n: int) -> None:
    """A verdict committed as the console commits it, waiting for the relay."""
    console = make_console(sessions)
    console.ingestor.add_alerts([alert(n)], now=T0)
    with sessions() as session:
        case_id = session.scalar(select(Case.id).where(Case.transaction_id == f"tx-{n:05d}"))
    assert console.login("ana") == 303
    response = console.client.post(
        f"/cases/{case_id}/verdict",
        data={"csrf_token": console.csrf, "kind": "fraud", "comment": "checked"},
        follow_redirects=False,
    )
    assert response.status_code == 303


def _labels_on(bootstrap: str, topic: str, wait_until: WaitUntil, expected: int) -> list[bytes]:
    reader = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    values: list[bytes] = []

    def read() -> bool:
        for batch in reader.poll(timeout_ms=200).values():
            values.extend(record.value for record in batch)
        return len(values) >= expected

    wait_until(read, timeout_s=30, what=f"{expected} label(s) on {topic}")
    values.extend(r.value for b in reader.poll(timeout_ms=500).values() for r in b)  # repeats?
    reader.close()
    return values


@_stops_a_broker_under_a_client
def test_a_stalled_broker_gets_each_label_once(
    unique: str, sessions: sessionmaker[Session], wait_until: WaitUntil
) -> None:
    """Passes while the broker does not answer leave the label in flight, not sent again
    (a stalled broker got 3-5 copies of each label)."""
    with EmbeddedBroker() as broker:
        topics = _topics(broker, unique)
        relay = LabelRelay(sessions, bootstrap=broker.bootstrap, topic=topics.labels)
        _give_verdict(sessions, 1)
        broker.signal(signal.SIGSTOP)
        try:
            assert [relay.publish_pending(timeout_s=0.3) for _ in range(3)] == [0, 0, 0]
        finally:
            broker.signal(signal.SIGCONT)
        wait_until(
            lambda: relay.publish_pending(timeout_s=1) or relay.sent == 1,
            timeout_s=30,
            what="the label acknowledged",
        )
        relay.stop()
        assert len(_labels_on(broker.bootstrap, topics.labels, wait_until, 1)) == 1


@_stops_a_broker_under_a_client
def test_labels_queued_while_the_broker_was_down_go_once_it_is_back(
    unique: str, sessions: sessionmaker[Session], wait_until: WaitUntil
) -> None:
    """After a broker restart the relay's producer could stay in a fatal state (its
    idempotent producer id), and the queued labels waited for a console restart."""
    broker = EmbeddedBroker().start()
    try:
        topics = _topics(broker, unique)
        relay = LabelRelay(sessions, bootstrap=broker.bootstrap, topic=topics.labels)
        _give_verdict(sessions, 1)
        assert relay.publish_pending(timeout_s=10) == 1
        broker.stop()
        _give_verdict(sessions, 2)
        assert relay.publish_pending(timeout_s=1) == 0  # no broker
        broker = EmbeddedBroker(port=broker.port).start()  # the same address, empty
        topics = _topics(broker, unique)

        def sent_both() -> bool:
            with contextlib.suppress(KafkaError):
                relay.publish_pending(timeout_s=1)
            return relay.sent == 2

        wait_until(sent_both, timeout_s=60, what="the queued label sent after the restart")
        relay.stop()
        assert len(_labels_on(broker.bootstrap, topics.labels, wait_until, 1)) == 1
    finally:
        broker.stop()


def test_archive_writes_day_partitions_that_training_reads(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    topics = _topics(broker, unique)
    transactions = [
        {
            "transaction_id": f"a{n}",
            "event_time": (T0 + timedelta(hours=7 * n)).isoformat().replace("+00:00", "Z"),
            "card_id": f"c{n % 3}",
            "merchant_id": f"m{n % 2}",
            "amount": 5.0 + n,
        }
        for n in range(6)
    ]
    raw = [json.dumps(t).encode() for t in transactions]
    # a record without a value (a tombstone) stopped the archiver at every restart
    _produce(broker, topics.transactions, [*raw, raw[0], b'{"transaction_id": "x"}', None])
    labels = [
        {"transaction_id": "a1", "is_fraud": True, "label_time": "2026-11-21T12:00:00Z"},
        {"transaction_id": "a2", "is_fraud": True, "label_time": "2026-11-21T12:00:00Z"},
        {"transaction_id": "a2", "is_fraud": False, "label_time": "2026-11-22T08:00:00Z"},
    ]
    _produce(broker, topics.labels, [*(json.dumps(label).encode() for label in labels), None])
    archiver = TopicArchiver(
        bootstrap=broker.bootstrap,
        transactions_topic=topics.transactions,
        labels_topic=topics.labels,
        out_dir=tmp_path / "archive",
        group_id=f"{unique}archive",
    )
    stats = archiver.run(stop=threading.Event(), idle_exit_s=3.0)
    assert stats.transactions == 7  # the repeat is written; the reader drops it
    assert stats.labels == 3
    assert stats.skipped == {"missing_field": 1, "malformed_json": 1, "invalid_label": 1}
    days = sorted(p.name for p in (tmp_path / "archive" / "transactions").iterdir())
    assert days == ["day=2026-11-20", "day=2026-11-21"]
    history = read_history(tmp_path / "archive")
    assert list(history["transaction_id"]) == [f"a{n}" for n in range(6)]
    assert dict(zip(history["transaction_id"], history["is_fraud"], strict=True)) == {
        "a0": 0,
        "a1": 1,
        "a2": 0,  # the later verdict wins
        "a3": 0,
        "a4": 0,
        "a5": 0,
    }


def test_a_seeded_archive_continues_with_what_the_archiver_writes(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    """The compose stack's offline store: a simulated history seeds the archive (once),
    the archiver appends the stream's payments and labels, and training reads them all."""
    archive = tmp_path / "archive"
    seed = ["simulate", "history", "--days", "3", "--cards", "50", "--merchants", "10"]
    seed += ["--start", "2026-11-17", "--format", "archive", "--out", str(archive)]
    first = CliRunner().invoke(cli, seed)
    assert first.exit_code == 0, first.output
    assert "seeded the archive" in first.output
    again = CliRunner().invoke(cli, seed)  # a restarted stack's one-shot
    assert "left as it is" in again.output
    seeded = read_history(archive)
    topics = _topics(broker, unique)
    live = {
        "transaction_id": "live-1",
        "event_time": "2026-11-21T09:00:00Z",
        "card_id": "c-live",
        "merchant_id": "m1",
        "amount": 12.5,
        "device_id": "d1",  # a field the simulated history does not have
    }
    _produce(broker, topics.transactions, [json.dumps(live).encode()])
    verdict = {"transaction_id": "live-1", "is_fraud": True, "label_time": "2026-11-21T12:00:00Z"}
    _produce(broker, topics.labels, [json.dumps(verdict).encode()])
    TopicArchiver(
        bootstrap=broker.bootstrap,
        transactions_topic=topics.transactions,
        labels_topic=topics.labels,
        out_dir=archive,
        group_id=f"{unique}archive",
    ).run(stop=threading.Event(), idle_exit_s=3.0)
    history = read_history(archive)
    assert len(history) == len(seeded) + 1
    assert history["transaction_id"].iloc[-1] == "live-1"
    assert history["device_id"].iloc[-1] == "d1"
    assert history["is_fraud"].iloc[-1] == 1
    # the seed's labels survive the merge
    assert history["is_fraud"].iloc[:-1].tolist() == seeded["is_fraud"].tolist()
    assert seeded["is_fraud"].sum() > 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_users_add_command(database_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["review", "users", "add", "dana", "--role", "lead", "--database-url", database_url],
        input="a long enough password\na long enough password\n",
    )
    assert result.exit_code == 0, result.output
    short = runner.invoke(
        cli,
        ["review", "users", "add", "eve", "--database-url", database_url],
        input="short\nshort\n",
    )
    assert short.exit_code == 1
    assert "use at least 12" in short.output
    for name in ("4111111111111111", "4111\t1111\t1111\t1111"):  # repr() splits the second
        pan = runner.invoke(
            cli,
            ["review", "users", "add", name, "--database-url", database_url],
            input="a long enough password\na long enough password\n",
        )  # it would be in every label's analyst field
        assert pan.exit_code == 2
        assert "user name '[PAN-REDACTED]'" in pan.output
        assert "1111" not in pan.output
        assert "Password" not in pan.output  # refused before it is asked for, twice
    for name in ("seed", "backfill"):  # the archive's verdicts from a history: they lose ties
        reserved = runner.invoke(
            cli, ["review", "users", "add", name, "--database-url", database_url]
        )
        assert reserved.exit_code == 2
        assert f"user name '{name}' is reserved" in reserved.output
    listed = runner.invoke(cli, ["review", "users", "list", "--database-url", database_url])
    assert "dana\tlead\tactive" in listed.output
    gone = runner.invoke(
        cli, ["review", "users", "deactivate", "dana", "--database-url", database_url]
    )
    assert gone.exit_code == 0, gone.output
    from review import make_engine, make_sessions

    with make_sessions(make_engine(database_url))() as session:
        user = session.scalar(select(User).where(User.username == "dana"))
        assert user is not None
        assert user.role == "lead"
        assert not user.active
        assert user.password_hash.startswith("$argon2id$")
