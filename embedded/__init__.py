"""Embedded stand-ins for production parts, for zero-configuration runs and tests."""

from embedded.broker import BrokerStartError, EmbeddedBroker, free_port

__all__ = ["BrokerStartError", "EmbeddedBroker", "free_port"]
