"""SQLAlchemy 2.0 models: experiment, trial, per-layer row.

Times are NNI's epoch milliseconds (BigInteger) so that a value read back equals NNI's exactly
on SQLite and PostgreSQL alike. Columns the queries filter or aggregate on (model, dataset,
val_error, layer) are denormalized onto the rows they are read from, so the hot endpoints are a
single indexed scan without a join.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


def owned_rows(back_populates: str) -> Any:
    """The one-to-many side of a parent that owns its rows: they go with it, deleted by the
    database's ON DELETE CASCADE (``passive_deletes``: no SELECT of them first)."""
    return relationship(
        back_populates=back_populates, cascade="all, delete-orphan", passive_deletes=True
    )


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nni_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(256))
    model: Mapped[str | None] = mapped_column(String(64), index=True)
    dataset: Mapped[str | None] = mapped_column(String(64))
    trial_command: Mapped[str | None] = mapped_column(Text)
    search_space: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32))
    # "search", or "confirmation": an experiment that re-runs chosen configurations of earlier
    # searches over fresh seeds (its NNI name says which, see analysis/confirmation.py).
    role: Mapped[str] = mapped_column(String(16), default="search")
    confirms: Mapped[list[str] | None] = mapped_column(JSON)  # the searches' NNI ids
    start_time: Mapped[int | None] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    # Where the last ingest read from ("rest" or "sqlite") and a stamp of that source
    # (file size+mtime), so an unchanged stopped experiment is not re-read every sync.
    source: Mapped[str | None] = mapped_column(String(16))
    source_stamp: Mapped[str | None] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(40))

    trials: Mapped[list[Trial]] = owned_rows("experiment")


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("experiment_id", "trial_job_id", name="uq_trials_experiment_job"),
        # Covering indexes of the hot queries: best config, per-layer ranking, compare.
        Index("ix_trials_md_val", "model", "dataset", "val_error"),
        Index(
            "ix_trials_md_layers", "model", "dataset", "family", "n_layers", "layers", "val_error"
        ),
        Index(
            "ix_trials_md_config",
            "model",
            "dataset",
            "family",
            "config_key",
            "val_error",
            "test_error",
        ),
        Index("ix_trials_md_budget", "model", "dataset", "budget", "partial", "val_error"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Indexed as the leading column of uq_trials_experiment_job (lookups and cascades alike).
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    trial_job_id: Mapped[str] = mapped_column(String(64))
    # 64-bit: NNI allows any integer a JSON number holds there (a seed ≥ 2**31 is legal).
    sequence_id: Mapped[int | None] = mapped_column(BigInteger)
    model: Mapped[str | None] = mapped_column(String(64))
    dataset: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # what NNI handed the trial
    # The effective configuration (trials/contract.py): from the trial's final report, else NNI's
    # parameters over the command's flags, else the command alone ("report"/"parameters"/"command").
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    config_source: Mapped[str | None] = mapped_column(String(16))
    # sha1 of the configuration without seed and runtime knobs: one config over several seeds.
    config_key: Mapped[str] = mapped_column(String(40))
    # "epochs=15 lr=0.1 batch_size=100": trials of different budgets are never ranked together.
    budget: Mapped[str | None] = mapped_column(String(256))
    # Not a full-budget result: stopped early, failed, still running, or fewer epochs than asked.
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    epochs_run: Mapped[int | None] = mapped_column(Integer)
    layers: Mapped[str] = mapped_column(String(128))  # "none" or sorted "3,4"
    n_layers: Mapped[int] = mapped_column(Integer)  # 0 = no layer regularized, -1 = unparseable
    # "vanilla" (no layer regularized), "nsr" (NSR on some layers), another regularizer's name,
    # or "unknown" (unparseable layers): what compare and the layer rankings select on.
    family: Mapped[str] = mapped_column(String(32))
    regularizer: Mapped[str | None] = mapped_column(String(32))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    val_error: Mapped[float | None] = mapped_column(Float)  # final "default"
    test_error: Mapped[float | None] = mapped_column(Float)
    best_epoch: Mapped[int | None] = mapped_column(BigInteger)
    epoch_seconds: Mapped[float | None] = mapped_column(Float)
    final_metrics: Mapped[dict[str, float] | None] = mapped_column(JSON)
    # What NNI held when the final metric is not the expected dict (a bare float, junk, ...).
    final_raw: Mapped[str | None] = mapped_column(Text)
    intermediate: Mapped[list[float]] = mapped_column(JSON)
    start_time: Mapped[int | None] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(40))

    experiment: Mapped[Experiment] = relationship(back_populates="trials")
    layer_rows: Mapped[list[TrialLayer]] = owned_rows("trial")


class TrialLayer(Base):
    __tablename__ = "trial_layers"
    __table_args__ = (
        # Also the index of the joins from trials (trial_id leads). No other index: every
        # query reaches these rows from the trials it selected (issue 25: each index on values
        # spread over the whole store costs a page written per row at ingest).
        UniqueConstraint("trial_id", "layer", name="uq_trial_layers_trial_layer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Indexed as the leading column of uq_trial_layers_trial_layer.
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    layer: Mapped[int] = mapped_column(Integer)
    # Effective λ: 0 when the layer is not regularized; None when it is but no lambda_<k> was given.
    lam: Mapped[float | None] = mapped_column(Float)
    var_init: Mapped[float | None] = mapped_column(Float)
    var_end: Mapped[float | None] = mapped_column(Float)
    # The trial's model, data set, family and error are read from the trial (a join by trial_id):
    # copies here served an index no query used (migration 0006).

    trial: Mapped[Trial] = relationship(back_populates="layer_rows")


class DataVersion(Base):
    """One row whose counter goes up in every transaction that changes results: readers (the
    service's response cache, in any process) know when what they computed is stale."""

    __tablename__ = "data_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class SyncError(Base):
    """The last failure of each experiment the sync could not read or store (NNI id as the
    registry or the file names it). A later pass that ingests the experiment removes its row."""

    __tablename__ = "sync_errors"

    nni_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[int] = mapped_column(BigInteger)  # epoch milliseconds
