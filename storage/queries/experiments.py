"""Experiments: the list, one experiment's detail, sync failures, the data version, and what
re-running an experiment's trials needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from storage.errors import NotFound
from storage.models import DataVersion, Experiment, SyncError, Trial
from storage.queries.groups import TrialSet, trial_set_conditions
from storage.queries.paging import check_page
from storage.schemas import ExperimentDetail, ExperimentSummary, Page, SyncErrorItem


def data_version(session: Session) -> int:
    """Goes up whenever an ingest changes results (cache key for derived answers)."""
    return session.scalar(select(DataVersion.version).where(DataVersion.id == 1)) or 0


def list_experiments(
    session: Session,
    *,
    model: str | None = None,
    dataset: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[ExperimentSummary]:
    check_page(limit, offset)
    conds = []
    if model is not None:
        conds.append(Experiment.model == model)
    if dataset is not None:
        conds.append(Experiment.dataset == dataset)
    if status is not None:
        conds.append(Experiment.status == status.upper())
    total = session.scalar(select(func.count()).select_from(Experiment).where(*conds)) or 0
    rows = session.scalars(
        select(Experiment)
        .where(*conds)
        .order_by(Experiment.start_time.desc(), Experiment.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    stats = _experiment_stats(session, [r.id for r in rows])
    errors = _sync_errors(session, [r.nni_id for r in rows])
    items = [_experiment_summary(r, stats.get(r.id), errors.get(r.nni_id)) for r in rows]
    return Page[ExperimentSummary](total=total, limit=limit, offset=offset, items=items)


def _sync_errors(session: Session, nni_ids: list[str]) -> dict[str, str]:
    if not nni_ids:
        return {}
    q = select(SyncError.nni_id, SyncError.message).where(SyncError.nni_id.in_(nni_ids))
    return {k: m for k, m in session.execute(q)}


def list_sync_errors(session: Session) -> list[SyncErrorItem]:
    """Every experiment whose last sync failed (stored or not), newest failure first."""
    rows = session.scalars(select(SyncError).order_by(SyncError.at.desc(), SyncError.nni_id))
    return [SyncErrorItem(nni_id=r.nni_id, message=r.message, at=r.at) for r in rows]


def _experiment_stats(session: Session, ids: list[int]) -> dict[int, tuple[int, int, float | None]]:
    # Counts only for the page shown: a GROUP BY over every trial would not scale.
    if not ids:
        return {}
    q = (
        select(
            Trial.experiment_id,
            func.count(),
            func.sum(case((Trial.status == "SUCCEEDED", 1), else_=0)),
            func.min(Trial.val_error),
        )
        .where(Trial.experiment_id.in_(ids))
        .group_by(Trial.experiment_id)
    )
    return {r[0]: (int(r[1]), int(r[2] or 0), r[3]) for r in session.execute(q)}


def _experiment_summary(
    e: Experiment, stats: tuple[int, int, float | None] | None, sync_error: str | None = None
) -> ExperimentSummary:
    n, ok, best = stats or (0, 0, None)
    return ExperimentSummary(
        nni_id=e.nni_id,
        name=e.name,
        model=e.model,
        dataset=e.dataset,
        status=e.status,
        start_time=e.start_time,
        end_time=e.end_time,
        source=e.source,
        role=e.role,
        confirms=e.confirms,
        n_trials=n,
        n_succeeded=ok,
        best_val_error=best,
        sync_error=sync_error,
    )


def get_experiment(session: Session, nni_id: str) -> ExperimentDetail:
    e = session.scalar(select(Experiment).where(Experiment.nni_id == nni_id))
    if e is None:
        raise NotFound(f"unknown experiment {nni_id!r}")
    summary = _experiment_summary(
        e, _experiment_stats(session, [e.id]).get(e.id), _sync_errors(session, [nni_id]).get(nni_id)
    )
    return ExperimentDetail(
        **summary.model_dump(), trial_command=e.trial_command, search_space=e.search_space
    )


@dataclass(frozen=True)
class ExperimentRun:
    """What re-running an experiment's trials needs: NNI's stored configuration of it (training
    service, tuner, search space...) and its trial command."""

    nni_id: str
    trial_command: str | None
    config: dict[str, Any] | None


def _run(e: Experiment | None) -> ExperimentRun | None:
    if e is None:
        return None
    return ExperimentRun(nni_id=e.nni_id, trial_command=e.trial_command, config=e.config)


def get_experiment_run(session: Session, nni_id: str) -> ExperimentRun | None:
    """The stored NNI configuration and trial command of experiment ``nni_id``, None if unknown."""
    return _run(session.scalar(select(Experiment).where(Experiment.nni_id == nni_id)))


def latest_experiment_run(session: Session, trials: TrialSet) -> ExperimentRun | None:
    """The most recently started experiment that holds any of ``trials``."""
    return _run(
        session.scalar(
            select(Experiment)
            .where(
                Experiment.id.in_(
                    select(Trial.experiment_id).where(*trial_set_conditions(trials))
                )
            )
            .order_by(Experiment.start_time.desc(), Experiment.id.desc())
            .limit(1)
        )
    )
