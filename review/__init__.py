"""The analyst review console: alerts in, verdicts out as labels.

``fraud review serve`` runs it; see :class:`review.service.ConsoleService`.
"""

from review.database import make_engine, make_sessions, upgrade_schema
from review.service import ConsoleService, ServiceConfig
from review.web import ConsoleConfig, create_app

__all__ = [
    "ConsoleConfig",
    "ConsoleService",
    "ServiceConfig",
    "create_app",
    "make_engine",
    "make_sessions",
    "upgrade_schema",
]
