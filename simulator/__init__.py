"""Payment-traffic simulator: labelled training histories and live traffic for Kafka.

A fixed population of cards and merchants makes everyday payments; three fraud scenarios
(stolen card, compromised merchant, card testing) are mixed in with their ground truth.
"""

from __future__ import annotations

from simulator.config import SimulationConfig
from simulator.errors import SimulationConfigError, SimulatorError
from simulator.generator import HISTORY_COLUMNS, SimulatedEvent, TrafficGenerator
from simulator.invalid import INVALID_KINDS, InvalidKind, invalid_payload
from simulator.live import LiveStats, MessageProducer, produce_live, replay_start
from simulator.rows import FRAUD_SCENARIOS, FraudScenario
from simulator.storage import write_history

__all__ = [
    "FRAUD_SCENARIOS",
    "HISTORY_COLUMNS",
    "INVALID_KINDS",
    "FraudScenario",
    "InvalidKind",
    "LiveStats",
    "MessageProducer",
    "SimulatedEvent",
    "SimulationConfig",
    "SimulationConfigError",
    "SimulatorError",
    "TrafficGenerator",
    "invalid_payload",
    "produce_live",
    "replay_start",
    "write_history",
]
