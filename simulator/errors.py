"""Errors of the simulator: one root, one class per failure a caller handles."""

from __future__ import annotations

__all__ = ["SimulationConfigError", "SimulatorError"]


class SimulatorError(Exception):
    """Root of every error raised by ``simulator``."""


class SimulationConfigError(SimulatorError, ValueError):
    """A :class:`~simulator.config.SimulationConfig` value is out of range."""
