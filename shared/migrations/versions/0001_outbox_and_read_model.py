"""The notifier's delivery outbox and the aggregator's response read model.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(400), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("response_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_ref", sa.String(200), nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=True),
        sa.UniqueConstraint("idempotency_key", name="uq_notifier_deliveries_idempotency_key"),
    )
    op.create_index(
        "ix_notifier_deliveries_due", "notifier_deliveries", ["status", "next_attempt_at"]
    )
    op.create_table(
        "aggregator_responses",
        sa.Column("response_id", sa.String(200), primary_key=True),
        sa.Column("survey_kind", sa.String(10), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("category", sa.String(10), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_aggregator_responses_window", "aggregator_responses", ["survey_kind", "responded_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_aggregator_responses_window", "aggregator_responses")
    op.drop_table("aggregator_responses")
    op.drop_index("ix_notifier_deliveries_due", "notifier_deliveries")
    op.drop_table("notifier_deliveries")
