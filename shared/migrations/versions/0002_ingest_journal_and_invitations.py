"""Ingest: the inbound journal, webhook ids seen, customers' survey state, invitations, decisions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_journal",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("topic", sa.String(120), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=True, index=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("accepted_at", WHEN, nullable=False),
        sa.Column("published_at", WHEN, nullable=True),
        sa.Column("lease_until", WHEN, nullable=True),
    )
    op.create_index("ix_ingest_journal_unpublished", "ingest_journal", ["published_at", "id"])
    op.create_table(
        "ingest_webhook_ids",
        sa.Column("webhook_id", sa.String(200), primary_key=True),
        sa.Column("received_at", WHEN, nullable=False, index=True),
    )
    op.create_table(
        "ingest_customers",
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("email_hash", sa.String(64), nullable=True, index=True),
        sa.Column("last_invited_at", WHEN, nullable=True),
        sa.Column("last_responded_at", WHEN, nullable=True),
        sa.Column("unsubscribed_at", WHEN, nullable=True),
        sa.Column("erased_at", WHEN, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "ingest_invitations",
        sa.Column("invitation_id", sa.String(200), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False, index=True),
        sa.Column("order_id", sa.String(200), nullable=True, index=True),
        sa.Column("survey_kind", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(120), nullable=True),
        sa.Column("send_at", WHEN, nullable=True),
        sa.Column("previous_invited_at", WHEN, nullable=True),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "ingest_decisions",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(200), nullable=False, index=True),
        sa.Column("invitation_id", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(120), nullable=True),
        sa.Column("send_at", WHEN, nullable=True),
        sa.Column("decided_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_decisions")
    op.drop_table("ingest_invitations")
    op.drop_table("ingest_customers")
    op.drop_table("ingest_webhook_ids")
    op.drop_index("ix_ingest_journal_unpublished", "ingest_journal")
    op.drop_table("ingest_journal")
