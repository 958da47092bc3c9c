"""64-bit seed, best_epoch and sequence_id; sync_errors (the last failure per experiment)

Revision ID: 0004
Revises: 0003

SQLite stores every INTEGER in up to 64 bits whatever the declared type, so the column types
change on PostgreSQL only: a copy of the trials table (SQLite's batch mode) would cost minutes on a
large database for nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WIDENED = ("sequence_id", "seed", "best_epoch")


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        for column in WIDENED:
            op.alter_column("trials", column, type_=sa.BigInteger(), existing_nullable=True)
    op.create_table(
        "sync_errors",
        sa.Column("nni_id", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nni_id"),
    )


def downgrade():
    op.drop_table("sync_errors")
    if op.get_bind().dialect.name != "sqlite":
        for column in WIDENED:
            op.alter_column("trials", column, type_=sa.Integer(), existing_nullable=True)
