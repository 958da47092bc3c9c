"""trial configuration as reported, training budget, partial results; confirmation experiments

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default="search")
        )
        batch.add_column(sa.Column("confirms", sa.JSON(), nullable=True))
    with op.batch_alter_table("trials") as batch:
        batch.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("config_source", sa.String(16), nullable=True))
        batch.add_column(sa.Column("budget", sa.String(256), nullable=True))
        batch.add_column(
            sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("epochs_run", sa.Integer(), nullable=True))
        batch.create_index(
            "ix_trials_md_budget", ["model", "dataset", "budget", "partial", "val_error"]
        )
    # Rows ingested before this revision have no configuration yet: forget their source stamps
    # and fingerprints so the next sync parses them again.
    op.execute("UPDATE experiments SET source_stamp = NULL, fingerprint = ''")
    op.execute("UPDATE trials SET fingerprint = ''")


def downgrade():
    with op.batch_alter_table("trials") as batch:
        batch.drop_index("ix_trials_md_budget")
        for col in ("epochs_run", "partial", "budget", "config_source", "config"):
            batch.drop_column(col)
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("confirms")
        batch.drop_column("role")
