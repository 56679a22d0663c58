"""The hot path, free of Kafka: raw events in, decisions and dead letters out.

Per micro-batch: decode and validate each event, one online-store round trip for all
valid ones, one model call, then the policy. A failing dependency degrades the batch to
the fallback decision instead of stopping the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np

from feature_store import (
    InvalidEvent,
    OnlineStoreUnavailable,
    Transaction,
    TransactionCodec,
    redact_pans,
)
from feature_store.online import LabelUpdate, OnlineFeatureEngine
from stream.explain import ReasonExplainer
from stream.ledger import DecisionLedger
from stream.outage import Outage
from stream.policy import decide_batch
from stream.records import DeadLetter, Decision, DecisionRecord
from stream.rules import RulesFile
from stream.scoring import ServingModel

__all__ = ["BatchOutput", "BatchProcessor", "RawEvent", "dead_letter"]

log = logging.getLogger(__name__)


class RawEvent(msgspec.Struct, frozen=True, gc=False):
    """One consumed record. A Struct, not a dataclass: a frozen dataclass's ``__init__``
    costs a microsecond per event; untracked by the GC (only scalars, no cycles)."""

    value: bytes | None
    produced_at: float  # the Kafka record timestamp, epoch seconds
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class BatchOutput:
    decisions: list[DecisionRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def _explainer(model: ServingModel) -> ReasonExplainer:
    return ReasonExplainer(booster=model.model.booster, feature_set=model.feature_set)


class BatchProcessor:
    def __init__(
        self,
        *,
        codec: TransactionCodec,
        engine: OnlineFeatureEngine,
        model: ServingModel,
        fallback: Decision,
        deadline_s: float = 0.25,
        rules: RulesFile | None = None,
        ledger: DecisionLedger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._codec = codec
        self._engine = engine
        self._model = model
        self._fallback = fallback
        self._deadline_s = deadline_s
        self._rules = rules
        self._ledger = ledger
        self._clock = clock
        self._feature_set_version = model.feature_set.label
        self._explainer = _explainer(model)
        self._degraded = Outage(log, what="degraded decisions", lost="decisions degraded")
        self._unrecorded = Outage(
            log, what="decision ledger unavailable", lost="decisions not recorded"
        )

    @property
    def model(self) -> ServingModel:
        return self._model

    def swap_model(self, model: ServingModel) -> None:
        """Serve ``model`` from the next batch on; a new feature set gets its own engine
        over the same store (its longer windows fill up from now on)."""
        if model.feature_set.fingerprint != self._model.feature_set.fingerprint:
            self._engine = self._engine.for_feature_set(model.feature_set)
            self._feature_set_version = model.feature_set.label
        self._model = model
        self._explainer = _explainer(model)
        if self._rules is not None:
            self._rules.use_features(model.feature_set.names)

    async def apply_labels(self, labels: Sequence[LabelUpdate]) -> int:
        """Verdicts reach the state of the features being served."""
        return await self._engine.apply_labels(labels)

    async def process(self, events: Sequence[RawEvent]) -> BatchOutput:
        if self._rules is not None:
            self._rules.reload()  # one stat() per batch; a changed file is validated first
        out = BatchOutput()
        now = self._clock()
        decode = self._codec.decode
        transactions: list[Transaction] = []
        valid: list[RawEvent] = []
        for event in events:
            try:
                transactions.append(decode(event.value, now=now))
            except InvalidEvent as exc:
                out.dead_letters.append(dead_letter(event, exc, now))
                continue
            valid.append(event)
        if valid:
            out.decisions = await self._settle(await self._decide(transactions, valid))
        return out

    async def _settle(self, decided: list[DecisionRecord]) -> list[DecisionRecord]:
        """A redelivered transaction re-emits its first decision (see stream.ledger)."""
        if self._ledger is None:
            return decided
        try:
            settled = await self._ledger.settle(decided)
        except OnlineStoreUnavailable as exc:
            self._unrecorded.failed(len(decided), exc)
            return decided
        self._unrecorded.succeeded()
        return settled

    def _apply_rules(
        self,
        transactions: list[Transaction],
        features: np.ndarray | None,
        verdicts: list[tuple[Decision, list[str]]],
    ) -> list[tuple[Decision, list[str]]]:
        """Rules override the model (and, degraded, the fallback: rules-only mode)."""
        if self._rules is None:
            return verdicts
        for i, hit in self._rules.book.hits(transactions, features):
            verdicts[i] = (hit.decision, [f"rule:{hit.rule}", *verdicts[i][1]])
        return verdicts

    async def _decide(
        self, transactions: list[Transaction], events: list[RawEvent]
    ) -> list[DecisionRecord]:
        scores: np.ndarray | None = None
        degraded_reason = ""
        try:
            features = await asyncio.wait_for(
                self._engine.compute_batch(transactions), timeout=self._deadline_s
            )
            scores = self._model.score_batch(features)
        except TimeoutError:
            # a redelivery of these events later sees the same state: the store is idempotent
            degraded_reason = "latency_budget_exceeded"
            budget = f"the store missed the {self._deadline_s * 1000:.0f} ms budget"
            self._degraded.failed(len(transactions), budget)
        except OnlineStoreUnavailable as exc:
            degraded_reason = "online_store_unavailable"
            self._degraded.failed(len(transactions), exc)
        except Exception:  # the model itself failed: still decide, never stop consuming
            degraded_reason = "model_failure"
            log.exception("degraded batch of %d: the model failed", len(transactions))
        else:
            self._degraded.succeeded()
        if scores is None:
            verdicts: list[tuple[Decision, list[str]]] = [
                (self._fallback, [f"degraded:{degraded_reason}"])
            ] * len(transactions)
            score_list: list[float | None] = [None] * len(transactions)
        else:
            verdicts = decide_batch(scores, self._model.model.metadata.thresholds)
            score_list = [round(s, 6) for s in scores.tolist()]
        verdicts = self._apply_rules(transactions, None if scores is None else features, verdicts)
        if scores is not None:
            flagged = [i for i, (decision, _) in enumerate(verdicts) if decision != "approve"]
            if flagged:  # explanations cost ~ms: only for what an analyst will look at
                for i, reasons in zip(
                    flagged, self._explainer.explain(features[flagged]), strict=True
                ):
                    verdicts[i] = (verdicts[i][0], verdicts[i][1] + reasons)
        decided_at = self._clock()
        version = self._model.version
        return [
            DecisionRecord(
                transaction_id=tx.transaction_id,
                card_id=tx.card_id,
                merchant_id=tx.merchant_id,
                amount=tx.amount,
                event_time=tx.event_time.isoformat(),
                score=score,
                decision=decision,
                reason_codes=reasons,
                model_version=version,
                feature_set_version=self._feature_set_version,
                degraded=scores is None,
                latency_ms=round((decided_at - event.produced_at) * 1000.0, 3),
                decided_at=decided_at,
            )
            for tx, event, score, (decision, reasons) in zip(
                transactions, events, score_list, verdicts, strict=True
            )
        ]


def dead_letter(event: RawEvent, exc: InvalidEvent, now: float) -> DeadLetter:
    """The DLQ record for a rejected event; card numbers are redacted from all of it."""
    payload = (event.value or b"").decode("utf-8", errors="replace")
    return DeadLetter(
        reason=exc.reason,
        detail=redact_pans(exc.detail),
        payload=redact_pans(payload[:4096]),
        source_topic=event.topic,
        source_partition=event.partition,
        source_offset=event.offset,
        failed_at=now,
    )
