"""A real browser (Debian's Chromium, driven by Playwright) works the queue end to end:
log in, filter, open a case, confirm fraud, and the label arrives on ``fraud.labels``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from kafka import KafkaConsumer, KafkaProducer
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import func, select

from embedded import EmbeddedBroker, free_port
from review import make_engine, make_sessions, upgrade_schema
from review.auth import add_user
from review.schema import Case
from stream.settings import TopicNames
from stream.topics import ensure_topics
from tests.conftest import WaitUntil
from tests.console.conftest import PASSWORD, T0, alert

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# without these, Chromium keeps trying to reach Google on a machine with no internet
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def served_console(
    broker: EmbeddedBroker, unique: str, tmp_path: Path, wait_until: WaitUntil
) -> Iterator[tuple[str, TopicNames, str]]:
    topics = TopicNames(unique)
    ensure_topics(broker.bootstrap, topics.all(), partitions=2)
    database_url = f"sqlite:///{tmp_path / 'review.db'}"
    engine = make_engine(database_url)
    upgrade_schema(engine)
    sessions = make_sessions(engine)
    with sessions.begin() as session:
        add_user(session, username="ana", password=PASSWORD, role="analyst", now=T0)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for n in range(30):
        record = alert(n)
        producer.send(topics.alerts, msgspec.json.encode(record))
        producer.send(topics.decisions, msgspec.json.encode(record))
    producer.flush()
    producer.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FRAUD_KAFKA_BOOTSTRAP": broker.bootstrap, "FRAUD_TOPIC_PREFIX": unique}
    log = (tmp_path / "console.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fraud_cli",
            "review",
            "serve",
            "--port",
            str(port),
            "--database-url",
            database_url,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _healthy(url), timeout_s=60, what="the console answering /healthz")

        def ingested() -> bool:
            with sessions() as session:
                return session.scalar(select(func.count()).select_from(Case)) == 30

        wait_until(ingested, timeout_s=60, what="30 alerts ingested by the console")
        yield url, topics, database_url
    finally:
        process.terminate()
        process.wait(20)
        log.close()
        engine.dispose()


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("SCREENSHOT_DIR")  # set to refresh the README's screenshots
    if keep:
        shutil.copy(path, Path(keep) / path.name)


def test_analyst_confirms_fraud_in_the_browser(
    served_console: tuple[str, TopicNames, str],
    broker: EmbeddedBroker,
    tmp_path: Path,
    wait_until: WaitUntil,
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    url, topics, _ = served_console
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/queue")
        expect(page).to_have_url(f"{url}/login")
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{url}/queue")
        expect(page.locator("table.cases tbody tr")).to_have_count(30)

        page.select_option("select[name=decision]", "decline")
        page.fill("input[name=score_min]", "0.7")
        page.click("form.filters button[type=submit]")
        rows = page.locator("table.cases tbody tr")
        expected = [n for n in range(30) if n % 3 == 0 and (alert(n).score or 0) >= 0.7]
        expect(rows).to_have_count(len(expected))
        _shot(page, tmp_path, "queue")

        rows.first.locator("a").click()
        expect(page.locator("h1")).to_contain_text("Case #")
        expect(page.locator("svg.reasons rect")).to_have_count(2)
        transaction_id = page.locator("dl.facts dd").first.inner_text().strip()
        _shot(page, tmp_path, "case")
        page.fill("form.verdict input[name=comment]", "cardholder denies the payment")
        page.click("form.verdict button[value=fraud]")
        expect(page.locator("section").filter(has_text="Verdict")).to_contain_text(
            "Closed as fraud by ana"
        )
        browser.close()

    reader = KafkaConsumer(
        topics.labels, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
    )
    labels: list[dict[str, object]] = []

    def arrived() -> bool:
        for batch in reader.poll(timeout_ms=200).values():
            labels.extend(json.loads(r.value) for r in batch)
        return bool(labels)

    wait_until(arrived, timeout_s=30, what="the label on fraud.labels")
    reader.close()
    assert labels[0]["transaction_id"] == transaction_id
    assert labels[0]["is_fraud"] is True
    assert labels[0]["analyst"] == "ana"
