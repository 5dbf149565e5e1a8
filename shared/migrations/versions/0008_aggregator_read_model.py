"""Aggregator: what each response is cut by, segment buckets, cases, purchases, invitations,
daily snapshots and the digests sent.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A response row gains what the figures cut by. Its version is (received_at, event_id):
    # rows from before knew no received_at, and updated_at (when the row was written) is
    # the nearest thing they have.
    with op.batch_alter_table("aggregator_responses") as batch:
        batch.add_column(
            sa.Column("customer_id", sa.String(200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("invitation_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("segment", sa.JSON, nullable=False, server_default="{}"))
        batch.add_column(sa.Column("heard_from", sa.String(120), nullable=True))
        batch.add_column(sa.Column("themes", sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE aggregator_responses SET received_at = updated_at")
    with op.batch_alter_table("aggregator_responses") as batch:
        batch.alter_column("received_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_aggregator_responses_customer", "aggregator_responses", ["customer_id"])

    op.create_table(
        "aggregator_segment_buckets",
        sa.Column("dimension", sa.String(40), primary_key=True),
        sa.Column("value", sa.String(120), primary_key=True),
        # The order of admission: the first ``max_values`` by position keep their bucket.
        sa.Column("position", sa.Integer, nullable=False),
    )
    op.create_table(
        "aggregator_invitations",
        sa.Column("invitation_id", sa.String(200), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("survey_kind", sa.String(10), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "aggregator_case_steps",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(200), nullable=False, index=True),
        sa.Column("response_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "aggregator_purchases",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=False),
        # Signed: a refund or a cancellation is negative.
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "aggregator_daily_snapshots",
        # The day in the reporting time zone.
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("survey_kind", sa.String(10), primary_key=True),
        sa.Column("dimension", sa.String(40), primary_key=True),
        sa.Column("segment", sa.String(120), primary_key=True),
        sa.Column("promoters", sa.Integer, nullable=False),
        sa.Column("passives", sa.Integer, nullable=False),
        sa.Column("detractors", sa.Integer, nullable=False),
    )
    op.create_table(
        "aggregator_digests",
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("aggregator_digests")
    op.drop_table("aggregator_daily_snapshots")
    op.drop_table("aggregator_purchases")
    op.drop_table("aggregator_case_steps")
    op.drop_table("aggregator_invitations")
    op.drop_table("aggregator_segment_buckets")
    op.drop_index("ix_aggregator_responses_customer", "aggregator_responses")
    with op.batch_alter_table("aggregator_responses") as batch:
        for column in (
            "received_at",
            "themes",
            "heard_from",
            "segment",
            "invitation_id",
            "customer_id",
        ):
            batch.drop_column(column)
