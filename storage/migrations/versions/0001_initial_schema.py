"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 17:50:36.708644
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nni_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("dataset", sa.String(length=64), nullable=True),
        sa.Column("trial_command", sa.Text(), nullable=True),
        sa.Column("search_space", sa.JSON(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=True),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=True),
        sa.Column("source_stamp", sa.String(length=128), nullable=True),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("nni_id"),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_experiments_model"), ["model"], unique=False)

    op.create_table(
        "trials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("trial_job_id", sa.String(length=64), nullable=False),
        sa.Column("sequence_id", sa.Integer(), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("dataset", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("config_key", sa.String(length=40), nullable=False),
        sa.Column("layers", sa.String(length=128), nullable=False),
        sa.Column("n_layers", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("regularizer", sa.String(length=32), nullable=True),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("val_error", sa.Float(), nullable=True),
        sa.Column("test_error", sa.Float(), nullable=True),
        sa.Column("best_epoch", sa.Integer(), nullable=True),
        sa.Column("epoch_seconds", sa.Float(), nullable=True),
        sa.Column("final_metrics", sa.JSON(), nullable=True),
        sa.Column("final_raw", sa.Text(), nullable=True),
        sa.Column("intermediate", sa.JSON(), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=True),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("fingerprint", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("experiment_id", "trial_job_id", name="uq_trials_experiment_job"),
    )
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trials_experiment_id"), ["experiment_id"], unique=False
        )
        batch_op.create_index(
            "ix_trials_md_config",
            ["model", "dataset", "family", "config_key", "val_error", "test_error"],
            unique=False,
        )
        batch_op.create_index(
            "ix_trials_md_layers",
            ["model", "dataset", "family", "n_layers", "layers", "val_error"],
            unique=False,
        )
        batch_op.create_index("ix_trials_md_val", ["model", "dataset", "val_error"], unique=False)

    op.create_table(
        "trial_layers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("layer", sa.Integer(), nullable=False),
        sa.Column("lam", sa.Float(), nullable=True),
        sa.Column("var_init", sa.Float(), nullable=True),
        sa.Column("var_end", sa.Float(), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("dataset", sa.String(length=64), nullable=True),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("val_error", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trial_id", "layer", name="uq_trial_layers_trial_layer"),
    )
    with op.batch_alter_table("trial_layers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_trial_layers_lookup",
            ["model", "dataset", "family", "layer", "var_end", "var_init"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_trial_layers_trial_id"), ["trial_id"], unique=False)


def downgrade():
    with op.batch_alter_table("trial_layers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trial_layers_trial_id"))
        batch_op.drop_index("ix_trial_layers_lookup")

    op.drop_table("trial_layers")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_index("ix_trials_md_val")
        batch_op.drop_index("ix_trials_md_layers")
        batch_op.drop_index("ix_trials_md_config")
        batch_op.drop_index(batch_op.f("ix_trials_experiment_id"))

    op.drop_table("trials")
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiments_model"))

    op.drop_table("experiments")
