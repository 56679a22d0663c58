"""Indexes measured on 1M cases (bench/review_queue.py): the default page, the dashboard,
and merchant queues.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_index(
        "ix_cases_open_alerted",
        "cases",
        ["alerted_at", "id"],
        postgresql_where=_OPEN,
        sqlite_where=_OPEN,
    )
    op.drop_index("ix_cases_alerted", table_name="cases")
    op.create_index(
        "ix_cases_alerted",
        "cases",
        ["alerted_at", "id"],
        postgresql_include=["status", "model_version", "review_seconds"],
    )
    op.drop_index("ix_cases_merchant", table_name="cases")
    op.create_index("ix_cases_merchant", "cases", ["merchant_id", "status", "alerted_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_cases_merchant", table_name="cases")
    op.create_index("ix_cases_merchant", "cases", ["merchant_id", "alerted_at"])
    op.drop_index("ix_cases_alerted", table_name="cases")
    op.create_index("ix_cases_alerted", "cases", ["alerted_at", "id"])
    op.drop_index("ix_cases_open_alerted", table_name="cases")
