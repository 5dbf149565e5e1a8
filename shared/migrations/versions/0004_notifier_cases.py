"""Notifier: follow-up cases, where each alert was posted, and when deliveries originated.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notifier_deliveries") as batch:
        # When what the delivery is about happened (a response submitted), for its latency.
        batch.add_column(sa.Column("origin_at", WHEN, nullable=True))
    op.create_table(
        "notifier_cases",
        sa.Column("case_id", sa.String(36), primary_key=True),
        sa.Column("response_id", sa.String(200), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(200), nullable=True, index=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("question", sa.String(500), nullable=True),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("sla_due_at", WHEN, nullable=False),
        sa.Column("claimed_by", sa.String(120), nullable=True),
        sa.Column("claimed_at", WHEN, nullable=True),
        sa.Column("contacted_by", sa.String(120), nullable=True),
        sa.Column("contacted_at", WHEN, nullable=True),
        sa.Column("resolved_by", sa.String(120), nullable=True),
        sa.Column("resolved_at", WHEN, nullable=True),
        sa.Column("escalated_at", WHEN, nullable=True),
        sa.Column("segment", sa.JSON, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_notifier_cases_due", "notifier_cases", ["state", "sla_due_at"])
    op.create_table(
        "notifier_alerts",
        sa.Column("response_id", sa.String(200), primary_key=True),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("ts", sa.String(40), nullable=True),
        sa.Column("classified", sa.JSON, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notifier_alerts")
    op.drop_index("ix_notifier_cases_due", "notifier_cases")
    op.drop_table("notifier_cases")
    with op.batch_alter_table("notifier_deliveries") as batch:
        batch.drop_column("origin_at")
