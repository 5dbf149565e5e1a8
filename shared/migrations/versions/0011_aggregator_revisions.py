"""Aggregator: a revision on each fact's row, so that a worker reads only the rows written
since it last looked instead of every fact of 180 days at each refresh.

``aggregator_revision`` holds one counter. A transaction writing facts takes the next
revision from it first and stamps its rows with it; the counter's row stays locked until
the transaction ends, so revisions become visible in the order they were taken, and a
reader that has seen revision R has seen every row of every earlier revision.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FACT_TABLES = (
    "aggregator_responses",
    "aggregator_invitations",
    "aggregator_case_steps",
    "aggregator_purchases",
)


def upgrade() -> None:
    for table in FACT_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0")
            )
        op.create_index(f"ix_{table}_revision", table, ["revision"])
    counter = op.create_table(
        "aggregator_revision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(counter, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table("aggregator_revision")
    for table in FACT_TABLES:
        op.drop_index(f"ix_{table}_revision", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("revision")
