"""drop the indexes that a unique constraint already covers, and one no query uses

Revision ID: 0005
Revises: 0004

Each index on values spread over the whole store (model, data set, then an error or a variance)
costs a page written per new row at ingest, once the store is larger than one transaction, so
it is what made ingest slow down as the store grew (issue 25); these three only cost.
``ix_trials_experiment_id`` is the leading column of ``uq_trials_experiment_job`` (experiment_id,
trial_job_id), and ``ix_trial_layers_trial_id`` of ``uq_trial_layers_trial_layer`` (trial_id,
layer): every lookup and cascade delete by the parent id uses the unique index just as well, so
the separate ones only cost a write per row at ingest and ~60 bytes a trial.
``ix_trial_layers_lookup`` (model, dataset, family, layer, var_end, var_init; ~150 bytes a
trial) is used by no query: the layer rows are always reached from the selected trials, by
trial_id.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_trials_experiment_id", table_name="trials")
    op.drop_index("ix_trial_layers_trial_id", table_name="trial_layers")
    op.drop_index("ix_trial_layers_lookup", table_name="trial_layers")


def downgrade():
    op.create_index(
        "ix_trial_layers_lookup",
        "trial_layers",
        ["model", "dataset", "family", "layer", "var_end", "var_init"],
    )
    op.create_index("ix_trial_layers_trial_id", "trial_layers", ["trial_id"])
    op.create_index("ix_trials_experiment_id", "trials", ["experiment_id"])
