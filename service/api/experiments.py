from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from service.api.params import (
    Dataset,
    ExperimentTrialFilterDep,
    Limit,
    Model,
    Offset,
    SortOrder,
)
from service.deps import WRITE_RESPONSES, CacheDep, DbDep, SessionDep, WriteAccess
from storage import ingest, queries
from storage.queries import TrialSort
from storage.schemas import (
    ExperimentDetail,
    ExperimentSummary,
    Page,
    TrialDetail,
    TrialSummary,
)

router = APIRouter(prefix="/experiments", tags=["experiments"])


@router.get("", response_model=Page[ExperimentSummary])
def list_experiments(
    session: SessionDep,
    model: Model = None,
    dataset: Dataset = None,
    status: Annotated[str | None, Query(max_length=32, description="e.g. RUNNING, STOPPED")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ExperimentSummary]:
    return queries.list_experiments(
        session, model=model, dataset=dataset, status=status, limit=limit, offset=offset
    )


@router.get("/{nni_id}", response_model=ExperimentDetail)
def get_experiment(session: SessionDep, nni_id: str) -> ExperimentDetail:
    return queries.get_experiment(session, nni_id)


@router.get("/{nni_id}/trials", response_model=Page[TrialSummary])
def list_experiment_trials(
    session: SessionDep,
    where: ExperimentTrialFilterDep,
    sort: TrialSort = "val_error",
    order: SortOrder = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TrialSummary]:
    return queries.list_trials(
        session, where, sort=sort, descending=order == "desc", limit=limit, offset=offset
    )


@router.get("/{nni_id}/trials/{trial_job_id}", response_model=TrialDetail)
def get_trial(session: SessionDep, nni_id: str, trial_job_id: str) -> TrialDetail:
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
