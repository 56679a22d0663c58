"""The one settings object of the simulator: population sizes, seed and fraud rates."""

from __future__ import annotations

from dataclasses import dataclass, fields

from simulator.errors import SimulationConfigError

__all__ = ["SimulationConfig"]


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """Population, seed and scenario rates.

    The default rates give an overall fraud rate of about 0.9 % of transactions (0.37 %
    stolen card, 0.32 % compromised merchant, 0.25 % card testing, over a long run; a
    30-day window varies more, as a compromise is a rare, large event).
    """

    cards: int = 2000
    merchants: int = 200
    seed: int = 7
    currency: str = "EUR"
    mean_tx_per_card_day: float = 3.0
    # Scenario rates are instances per entity per day, not shares of transactions: a
    # scenario instance yields many frauds (see simulator.scenarios).
    stolen_card_rate: float = 0.0015
    compromised_merchant_rate: float = 0.0005
    card_testing_rate: float = 0.001

    def __post_init__(self) -> None:
        for name in ("cards", "merchants"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SimulationConfigError(
                    f"SimulationConfig.{name}={value!r}; it must be an integer >= 1"
                )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise SimulationConfigError(
                f"SimulationConfig.seed={self.seed!r}; it must be an integer >= 0"
            )
        if self.mean_tx_per_card_day <= 0:
            raise SimulationConfigError(
                f"SimulationConfig.mean_tx_per_card_day={self.mean_tx_per_card_day!r}; "
                "it must be > 0"
            )
        for f in fields(self):
            if f.name.endswith("_rate"):
                rate = getattr(self, f.name)
                if not 0.0 <= rate <= 1.0:
                    raise SimulationConfigError(
                        f"SimulationConfig.{f.name}={rate!r}; it is instances per entity "
                        "per day and must be in [0, 1] (the default is about 0.001)"
                    )
