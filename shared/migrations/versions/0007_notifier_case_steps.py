"""Notifier: every step of every case, once each (who, when), for its history and idempotency;
whose response each alert shows, for erasure.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_case_steps",
        # The case event's id: a redelivered click is recognised and applied once.
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False, index=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(120), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("note", sa.String(2000), nullable=True),
    )

    with op.batch_alter_table("notifier_alerts") as batch:
        # Whose response an alert shows, so an erasure finds and scrubs it.
        batch.add_column(sa.Column("customer_id", sa.String(200), nullable=True, index=True))


def downgrade() -> None:
    with op.batch_alter_table("notifier_alerts") as batch:
        batch.drop_column("customer_id")
    op.drop_table("notifier_case_steps")
