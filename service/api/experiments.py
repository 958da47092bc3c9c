from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from analysis import importance
from service.api.params import (
    Dataset,
    ExperimentTrialFilterDep,
    ImportanceMethod,
    Limit,
    Model,
    Offset,
    TrialPageDep,
    TrialSelectionDep,
)
from service.deps import WRITE_RESPONSES, CacheDep, DbDep, SessionDep, WriteAccess
from storage import ingest, queries, schemas

router = APIRouter(prefix="/experiments", tags=["experiments"])


@router.get("", response_model=schemas.Page[schemas.ExperimentSummary])
def list_experiments(
    session: SessionDep,
    model: Model = None,
    dataset: Dataset = None,
    status: Annotated[str | None, Query(max_length=32, description="e.g. RUNNING, STOPPED")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> schemas.Page[schemas.ExperimentSummary]:
    return queries.list_experiments(
        session, model=model, dataset=dataset, status=status, limit=limit, offset=offset
    )


@router.get("/{nni_id}", response_model=schemas.ExperimentDetail)
def get_experiment(session: SessionDep, nni_id: str) -> schemas.ExperimentDetail:
    return queries.get_experiment(session, nni_id)


@router.get("/{nni_id}/trials", response_model=schemas.Page[schemas.TrialSummary])
def list_experiment_trials(
    session: SessionDep,
    where: ExperimentTrialFilterDep,
    page: TrialPageDep,
) -> schemas.Page[schemas.TrialSummary]:
    return page.of(session, where)


@router.get("/{nni_id}/trials/{trial_job_id}", response_model=schemas.TrialDetail)
def get_trial(session: SessionDep, nni_id: str, trial_job_id: str) -> schemas.TrialDetail:
    return queries.get_trial(session, nni_id, trial_job_id)


@router.delete(
    "/{nni_id}",
    status_code=204,
    response_class=Response,
    dependencies=[WriteAccess],
    responses={**WRITE_RESPONSES, 404: {"description": "no such experiment"}},
)
def delete_experiment(
    db: DbDep, cache: CacheDep, nni_id: Annotated[str, Path(max_length=64)]
) -> Response:
    """Remove an experiment and its trials from the database (NNI's files are not touched: a
    sync that still finds it in NNI's registry brings it back)."""
    # Its own transaction, committed before the 204 goes out: the client may read at once.
    with db.session_scope() as session:
        ingest.delete_experiment(session, nni_id)
    cache.invalidate()
    return Response(status_code=204)


# ---------------------------------------------------------------- results UI
NniId = Annotated[str, Path(max_length=64, description="NNI experiment id")]


@router.get("/{nni_id}/points", response_model=schemas.TrialPoints)
async def experiment_points(cache: CacheDep, nni_id: NniId, where: TrialSelectionDep) -> Response:
    """The experiment's trials as columns in completion order, with the λ that took effect and
    the per-epoch curves: what the experiment page plots (and reloads while NNI runs)."""
    sel = replace(where, experiments=(nni_id,))
    return await cache.json(("points", sel), partial(queries.trial_points, sel=sel), heavy=True)


@router.get("/{nni_id}/importance", response_model=schemas.Importance)
async def experiment_importance(
    cache: CacheDep, nni_id: NniId, where: TrialSelectionDep, method: ImportanceMethod = "ped-anova"
) -> Response:
    """Hyperparameter importance of the (filtered) trials by ``optuna.importance`` on an
    in-memory study of them: all trials, then each regularized layer subset. A λ counts only
    in the trials that regularized its layer."""
    sel = replace(where, experiments=(nni_id,))
    compute = partial(importance.importance, sel=sel, method=method)
    return await cache.json(("importance", sel, method), compute, heavy=True)
