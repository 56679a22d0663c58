"""A batch of simulated transactions as parallel numpy arrays (one entry per row)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final, Literal

import numpy as np

__all__ = ["DAY_MS", "FRAUD_SCENARIOS", "NS_PER_MS", "FraudScenario", "RowBatch"]

FraudScenario = Literal["none", "stolen_card", "compromised_merchant", "card_testing"]
# Position is the code stored in RowBatch.scenario; 0 means legitimate.
FRAUD_SCENARIOS: Final[tuple[FraudScenario, ...]] = (
    "none",
    "stolen_card",
    "compromised_merchant",
    "card_testing",
)
DAY_MS: Final = 86_400_000
NS_PER_MS: Final = 1_000_000


@dataclass(frozen=True, kw_only=True, eq=False)
class RowBatch:
    """Rows before they become strings: entity positions, codes and numbers.

    Event times sit on a millisecond grid so they survive the round trip through
    ``datetime`` and JSON unchanged.
    """

    time_ns: np.ndarray  # int64, UTC epoch nanoseconds
    card: np.ndarray  # int64 position in CardProfiles
    merchant: np.ndarray  # int64 position in MerchantProfiles
    amount: np.ndarray  # float64, rounded to cents
    channel: np.ndarray  # int8 index into profiles.CHANNELS
    country: np.ndarray  # int16 index into profiles.COUNTRIES
    scenario: np.ndarray  # int8 index into FRAUD_SCENARIOS
    key: np.ndarray  # uint64 transaction key (simulator.ids)

    def __len__(self) -> int:
        return len(self.time_ns)

    def take(self, index: np.ndarray) -> RowBatch:
        return RowBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(batches: list[RowBatch]) -> RowBatch:
        return RowBatch(
            **{
                f.name: np.concatenate([getattr(b, f.name) for b in batches])
                for f in fields(RowBatch)
            }
        )
