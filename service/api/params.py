"""Shared query parameters (validated by FastAPI: a bad value is a 422 naming it)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from storage.queries import MAX_LIMIT, MAX_OFFSET, TrialFilter

TrialStatus = Literal[
    "WAITING", "RUNNING", "SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED",
    "EARLY_STOPPED", "UNKNOWN",
]  # fmt: skip
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1..{MAX_LIMIT}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip, 0..{MAX_OFFSET}")]
Model = Annotated[str | None, Query(max_length=64, description="e.g. mlp4")]
Dataset = Annotated[str | None, Query(max_length=64, description="e.g. digits")]
Layers = Annotated[
    str | None,
    Query(pattern=r"^(none|\d+(,\d+)*)$", description="'none' or comma-separated layer indices"),
]
Status = Annotated[TrialStatus | None, Query(description="NNI trial status")]
Experiment = Annotated[str | None, Query(max_length=64, description="NNI experiment id")]
SortOrder = Annotated[Literal["asc", "desc"], Query(description="sort direction")]


def trial_filter(
    experiment: Experiment = None,
    model: Model = None,
    dataset: Dataset = None,
    status: Status = None,
    layers: Layers = None,
) -> TrialFilter:
    """The trial filters of the query string, as the one value the queries take."""
    return TrialFilter(experiment, model, dataset, status, layers)


def experiment_trial_filter(
    nni_id: str, status: Status = None, layers: Layers = None
) -> TrialFilter:
    """The trials of the experiment in the path, filtered by the query string."""
    return TrialFilter(experiment=nni_id, status=status, layers=layers)


TrialFilterDep = Annotated[TrialFilter, Depends(trial_filter)]
ExperimentTrialFilterDep = Annotated[TrialFilter, Depends(experiment_trial_filter)]
