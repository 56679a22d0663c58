"""Business rules on top of the model: YAML, validated, reloaded when the file changes.

Example (``rules.yaml``)::

    blocklist:
      cards: [card_0badc0ffee]          # always decline
      merchants: [merch_7e57]
    allowlist:
      cards: [card_vip000001]           # always approve (unless blocklisted)
    amount_caps:                        # above the cap: the rule's decision
      - {name: jewellery_cap, mcc: "5944", max_amount: 2000, decision: review}
      - {name: online_cap, channel: online, max_amount: 5000, decision: decline}
    velocity:                           # any feature of the serving model
      - {name: burst, feature: card_tx_count_10m, above: 8, decision: review}

Precedence: blocklist > allowlist > the strictest other rule (decline over review) > the
model. A rule that fires names itself in the decision's reasons (``rule:<name>``). A file
that does not validate is refused with the reason, and the rules in force keep serving.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from feature_store import Transaction
from stream.errors import StreamStartError
from stream.records import Decision

__all__ = ["RuleBook", "RuleSet", "RulesError", "RulesFile"]

log = logging.getLogger(__name__)
_STRENGTH: dict[str, int] = {"approve": 0, "review": 1, "decline": 2}


class RulesError(ValueError):
    """The rules file is not valid; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Lists(_Strict):
    cards: frozenset[str] = frozenset()
    merchants: frozenset[str] = frozenset()


class AmountCap(_Strict):
    name: str = Field(min_length=1)
    max_amount: float = Field(ge=0)
    decision: Literal["review", "decline"]
    mcc: str | None = None
    channel: str | None = None


class VelocityRule(_Strict):
    name: str = Field(min_length=1)
    feature: str
    above: float
    decision: Literal["review", "decline"]


class RuleSet(_Strict):
    blocklist: _Lists = _Lists()
    allowlist: _Lists = _Lists()
    amount_caps: tuple[AmountCap, ...] = ()
    velocity: tuple[VelocityRule, ...] = ()

    @classmethod
    def parse(cls, text: str, *, features: tuple[str, ...]) -> RuleSet:
        try:
            rules = cls.model_validate(yaml.safe_load(text) or {})
        except (yaml.YAMLError, ValidationError) as exc:
            raise RulesError(f"invalid rules: {exc}") from exc
        unknown = [r.feature for r in rules.velocity if r.feature not in features]
        if unknown:
            raise RulesError(
                f"velocity rules name unknown feature(s) {unknown}; the serving model has "
                f"{list(features)}"
            )
        return rules


@dataclass(frozen=True)
class RuleHit:
    decision: Decision
    rule: str


class RuleBook:
    """The rules in force, applied to a batch after the model."""

    def __init__(self, rules: RuleSet, feature_names: tuple[str, ...]) -> None:
        self.rules = rules
        self._column = {name: i for i, name in enumerate(feature_names)}

    def hits(
        self, transactions: Sequence[Transaction], features: np.ndarray | None
    ) -> list[tuple[int, RuleHit]]:
        """The rows of a batch a rule fires on, with the winning rule, in row order.

        :meth:`evaluate` runs only on rows where some rule can fire (a listed id, an amount
        over the lowest cap, a feature over a velocity threshold: numpy over the batch), so a
        batch that no rule touches costs no per-row Python.
        """
        r = self.rules
        maybe = np.zeros(len(transactions), dtype=bool)
        cards = r.blocklist.cards | r.allowlist.cards
        merchants = r.blocklist.merchants | r.allowlist.merchants
        if cards or merchants:
            maybe |= np.fromiter(
                (tx.card_id in cards or tx.merchant_id in merchants for tx in transactions),
                dtype=bool,
                count=len(transactions),
            )
        if r.amount_caps:
            lowest = min(cap.max_amount for cap in r.amount_caps)
            amounts = np.fromiter(
                (tx.amount for tx in transactions), dtype=np.float64, count=len(transactions)
            )
            maybe |= amounts > lowest
        if features is not None:
            for rule in r.velocity:
                maybe |= features[:, self._column[rule.feature]] > rule.above
        out = []
        for i in np.flatnonzero(maybe).tolist():
            hit = self.evaluate(transactions[i], None if features is None else features[i])
            if hit is not None:
                out.append((i, hit))
        return out

    def evaluate(self, tx: Transaction, features: np.ndarray | None) -> RuleHit | None:
        r = self.rules
        if tx.card_id in r.blocklist.cards:
            return RuleHit("decline", "blocklist_card")
        if tx.merchant_id in r.blocklist.merchants:
            return RuleHit("decline", "blocklist_merchant")
        if tx.card_id in r.allowlist.cards:
            return RuleHit("approve", "allowlist_card")
        if tx.merchant_id in r.allowlist.merchants:
            return RuleHit("approve", "allowlist_merchant")
        best: RuleHit | None = None
        for cap in r.amount_caps:
            matches = (cap.mcc is None or cap.mcc == tx.mcc) and (
                cap.channel is None or cap.channel == tx.channel
            )
            if matches and tx.amount > cap.max_amount:
                best = _stronger(best, RuleHit(cap.decision, cap.name))
        if features is not None:
            for rule in r.velocity:
                value = features[self._column[rule.feature]]
                if value > rule.above:
                    best = _stronger(best, RuleHit(rule.decision, rule.name))
        return best


def _stronger(current: RuleHit | None, new: RuleHit) -> RuleHit:
    if current is None or _STRENGTH[new.decision] > _STRENGTH[current.decision]:
        return new
    return current


class RulesFile:
    """Watches a rules file; a change is validated before it replaces the rules in force."""

    def __init__(self, path: Path | None, feature_names: tuple[str, ...]) -> None:
        """Raises :class:`StreamStartError` when ``path`` is not a file of valid rules: a
        worker told to apply a blocklist does not start without it. Later changes that
        fail are refused and the rules in force stay."""
        self._path = path
        self._features = feature_names
        self._stamp: tuple[float, int] | None = None
        self._missing = False
        self.book = RuleBook(RuleSet(), feature_names)
        self.refusals = 0
        if path is not None:
            try:
                stat = path.stat()  # before the read: a change meanwhile is read again
                rules = RuleSet.parse(path.read_text(), features=feature_names)
            except (RulesError, OSError) as exc:
                raise StreamStartError(
                    f"rules file {str(path)!r}: {exc}; fix the file or FRAUD_RULES_FILE, or "
                    "unset it to run without rules"
                ) from None
            self._stamp = (stat.st_mtime, stat.st_size)
            self.book = RuleBook(rules, feature_names)
            log.warning("rules loaded from %s", path)

    def use_features(self, feature_names: tuple[str, ...]) -> None:
        """A new model's features: velocity rules on features it lacks stop applying."""
        self._features = feature_names
        rules = self.book.rules
        kept = tuple(r for r in rules.velocity if r.feature in feature_names)
        if len(kept) != len(rules.velocity):
            dropped = [r.name for r in rules.velocity if r not in kept]
            log.error("velocity rules %s name features the new model lacks; not applied", dropped)
        self.book = RuleBook(rules.model_copy(update={"velocity": kept}), feature_names)
        self._stamp = None
        self.reload()

    def reload(self) -> bool:
        """Load the file if it changed; True if new rules are in force."""
        if self._path is None:
            return False
        try:
            stat = self._path.stat()
        except OSError as exc:
            if not self._missing:  # said once; the file may be being replaced
                log.error("rules file unreadable, keeping the rules in force: %s", exc)
            self._missing = True
            return False
        self._missing = False
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            rules = RuleSet.parse(self._path.read_text(), features=self._features)
        except (RulesError, OSError) as exc:
            self.refusals += 1
            log.error("refused rules file %s, keeping the rules in force: %s", self._path, exc)
            return False
        self.book = RuleBook(rules, self._features)
        log.warning("rules loaded from %s", self._path)
        return True
