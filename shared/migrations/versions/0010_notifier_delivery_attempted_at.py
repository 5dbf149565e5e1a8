"""Notifier: when a delivery's attempt that may have delivered began, so the next attempt
looks for its message in a window of the channel's history, not in all of it since the
delivery was recorded.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_deliveries") as batch:
        batch.add_column(sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifier_deliveries") as batch:
        batch.drop_column("attempted_at")
