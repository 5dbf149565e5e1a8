"""Notifier: deliveries found by what they are about (a response's alert, an invitation's
email) through an index, not a scan of the whole outbox on every response.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_notifier_deliveries_subject", "notifier_deliveries", ["response_id", "kind"]
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_deliveries_subject", "notifier_deliveries")
