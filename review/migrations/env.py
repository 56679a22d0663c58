"""Alembic environment: the connection comes from :func:`review.database.upgrade_schema`."""

from __future__ import annotations

from alembic import context

from review.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
