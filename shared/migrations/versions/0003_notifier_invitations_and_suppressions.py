"""Notifier: deliveries know their customer; the suppression list.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_deliveries") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(200), nullable=True))
        batch.create_index("ix_notifier_deliveries_customer", ["customer_id"])
    op.create_table(
        "notifier_suppressions",
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notifier_suppressions")
    with op.batch_alter_table("notifier_deliveries") as batch:
        batch.drop_index("ix_notifier_deliveries_customer")
        batch.drop_column("customer_id")
