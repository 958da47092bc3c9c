"""trial_layers without the copies of its trial's model, dataset, family and val_error

Revision ID: 0006
Revises: 0005

The copies were there for ``ix_trial_layers_lookup`` (dropped in 0005): every query reaches a
layer row from its trial (a join by trial_id), so they only held the same facts twice, about a
hundred bytes a trial on PostgreSQL (issue 25). SQLite rebuilds the table (batch mode), once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COPIES = ("model", "dataset", "family", "val_error")


def upgrade():
    with op.batch_alter_table("trial_layers") as batch:
        for column in COPIES:
            batch.drop_column(column)


def downgrade():
    with op.batch_alter_table("trial_layers") as batch:
        batch.add_column(sa.Column("model", sa.String(64), nullable=True))
        batch.add_column(sa.Column("dataset", sa.String(64), nullable=True))
        batch.add_column(sa.Column("family", sa.String(32), nullable=False, server_default=""))
        batch.add_column(sa.Column("val_error", sa.Float(), nullable=True))
    op.execute(
        "UPDATE trial_layers SET model = (SELECT model FROM trials t WHERE t.id = trial_id), "
        "dataset = (SELECT dataset FROM trials t WHERE t.id = trial_id), "
        "family = (SELECT family FROM trials t WHERE t.id = trial_id), "
        "val_error = (SELECT val_error FROM trials t WHERE t.id = trial_id)"
    )
