"""Rules: validated, applied over the model (and alone when degraded), reloaded live."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from batch_training.registry import ModelRegistry
from embedded import free_port
from feature_store import CORE_FEATURE_SET, TransactionCodec
from feature_store.online import (
    MemoryOnlineStore,
    OnlineFeatureEngine,
    OnlineStore,
    RedisOnlineStore,
)
from stream import BatchProcessor, RawEvent
from stream.errors import StreamStartError
from stream.rules import RulesError, RuleSet, RulesFile
from stream.scoring import load_serving_model

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
RULES = """
blocklist: {cards: [card_bad]}
allowlist: {cards: [card_vip]}
amount_caps:
  - {name: jewellery_cap, mcc: "5944", max_amount: 2000, decision: review}
velocity:
  - {name: burst, feature: card_tx_count_10m, above: 3, decision: decline}
"""


def _processor(registry: ModelRegistry, store: OnlineStore, rules: Path) -> BatchProcessor:
    model = load_serving_model(registry)
    return BatchProcessor(
        codec=TransactionCodec(),
        engine=OnlineFeatureEngine(feature_set=model.feature_set, store=store),
        model=model,
        fallback="approve",
        rules=RulesFile(rules, model.feature_set.names),
        clock=lambda: NOW.timestamp(),
    )


def _event(i: int, **changes: object) -> RawEvent:
    body = {
        "transaction_id": f"r{i}",
        "event_time": (NOW - timedelta(seconds=60 - i)).isoformat(),
        "card_id": f"card_{i}",
        "merchant_id": "merch_1",
        "amount": 20.0,
        **changes,
    }
    return RawEvent(json.dumps(body).encode(), NOW.timestamp(), "transactions", 0, i)


def _decide(processor: BatchProcessor, events: list[RawEvent]) -> dict[str, tuple[str, list[str]]]:
    out = asyncio.run(processor.process(events))
    return {d.transaction_id: (d.decision, d.reason_codes) for d in out.decisions}


def test_rules_force_decisions_and_name_themselves(
    trained_registry: ModelRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    processor = _processor(trained_registry, MemoryOnlineStore(), path)
    burst = [_event(10 + k, card_id="card_fast") for k in range(5)]
    got = _decide(
        processor,
        [
            _event(1, card_id="card_bad"),
            _event(2, card_id="card_vip", amount=99_000.0),
            _event(3, mcc="5944", amount=2500.0),
            _event(4, mcc="5944", amount=1500.0),
            *burst,
        ],
    )
    assert got["r1"][0] == "decline"
    assert got["r1"][1][0] == "rule:blocklist_card"
    assert got["r2"][0] == "approve"  # the model's own reasons stay, after the rule
    assert got["r2"][1][0] == "rule:allowlist_card"
    assert got["r3"][1][0] == "rule:jewellery_cap"
    assert got["r3"][0] in {"review", "decline"}
    assert not any(r.startswith("rule:") for r in got["r4"][1])
    assert got["r14"][0] == "decline"  # the 5th payment in 10 minutes
    assert got["r14"][1][0] == "rule:burst"
    assert not any(r.startswith("rule:burst") for r in got["r10"][1])


def test_a_changed_file_is_used_and_a_bad_one_refused(
    trained_registry: ModelRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("blocklist: {cards: [card_1]}\n")
    processor = _processor(trained_registry, MemoryOnlineStore(), path)
    assert _decide(processor, [_event(1)])["r1"][0] == "decline"
    path.write_text("blocklist: {cards: [card_2]}\n")
    os.utime(path, (NOW.timestamp() + 10, NOW.timestamp() + 10))
    got = _decide(processor, [_event(2), _event(3, card_id="card_1")])
    assert got["r2"][0] == "decline"
    assert "rule:blocklist_card" not in got["r3"][1]
    path.write_text("blocklist: {cards: [card_3]}\nnot_a_rule_kind: 1\n")
    os.utime(path, (NOW.timestamp() + 20, NOW.timestamp() + 20))
    got = _decide(processor, [_event(4, card_id="card_2"), _event(5, card_id="card_3")])
    assert got["r4"][0] == "decline"  # the previous rules keep serving
    assert "rule:blocklist_card" not in got["r5"][1]


def test_a_worker_does_not_start_without_the_rules_it_was_given(
    trained_registry: ModelRegistry, tmp_path: Path
) -> None:
    """A blocklist the operator believes is in force must be: a missing or invalid file
    at start is refused, naming it (it used to run without rules, silently)."""
    with pytest.raises(StreamStartError, match=r"rules\.yaml.*FRAUD_RULES_FILE"):
        _processor(trained_registry, MemoryOnlineStore(), tmp_path / "rules.yaml")
    (tmp_path / "rules.yaml").write_text("blocklist: [\n")
    with pytest.raises(StreamStartError, match="invalid rules"):
        _processor(trained_registry, MemoryOnlineStore(), tmp_path / "rules.yaml")


def test_a_rules_file_gone_while_running_is_said_once_and_the_rules_stay(
    trained_registry: ModelRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("blocklist: {cards: [card_1]}\n")
    processor = _processor(trained_registry, MemoryOnlineStore(), path)
    path.unlink()
    with caplog.at_level(logging.ERROR, logger="stream.rules"):
        for i in range(3):
            assert _decide(processor, [_event(i, card_id="card_1")])[f"r{i}"][0] == "decline"
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "rules file unreadable, keeping the rules in force" in record.getMessage()


def test_rules_still_apply_when_the_store_is_down(
    trained_registry: ModelRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    dead = RedisOnlineStore(url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    got = _decide(
        _processor(trained_registry, dead, path), [_event(1, card_id="card_bad"), _event(2)]
    )
    assert got["r1"] == ("decline", ["rule:blocklist_card", "degraded:online_store_unavailable"])
    assert got["r2"] == ("approve", ["degraded:online_store_unavailable"])  # the fallback


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blocklist: [", "invalid rules"),
        (
            "amount_caps: [{name: x, max_amount: -1, decision: review}]",
            "greater than or equal to 0",
        ),
        (
            "velocity: [{name: v, feature: no_such_feature, above: 1, decision: review}]",
            "no_such_feature",
        ),
        ("amount_caps: [{name: x, max_amount: 5, decision: approve}]", "decision"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        RuleSet.parse(text, features=CORE_FEATURE_SET.names)
