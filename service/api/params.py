"""Shared query parameters (validated by FastAPI: a bad value is a 422 naming it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Path, Query, Request
from pydantic import StringConstraints
from sqlalchemy.orm import Session

from analysis.rerun import MAX_USER_COMMAND, Rerun
from storage import queries
from storage.queries import MAX_LIMIT, MAX_OFFSET, Group, TrialSelection, TrialSort
from storage.schemas import Page, TrialSummary
from trials import contract

# The contract's statuses, as a type FastAPI validates (a Literal needs them spelled at runtime).
TrialStatus = Literal[contract.TRIAL_STATUSES]  # type: ignore[valid-type]
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
Budget = Annotated[
    str | None,
    Query(
        max_length=256,
        description="training budget, e.g. 'epochs=15 lr=0.1 batch_size=100' "
        "(default for model answers: the budget with the most trials)",
    ),
]
IncludePartial = Annotated[
    bool, Query(description="rank early-stopped / partial-budget trials too (marked partial)")
]
SortOrder = Annotated[Literal["asc", "desc"], Query(description="sort direction")]


@dataclass(frozen=True)
class TrialPage:
    """Which page of a trial list, in which order: the query string's paging, once."""

    sort: TrialSort
    descending: bool
    limit: int
    offset: int

    def of(self, session: Session, where: TrialSelection) -> Page[TrialSummary]:
        return queries.list_trials(session, where, sort=self.sort, descending=self.descending,
                                   limit=self.limit, offset=self.offset)  # fmt: skip


def trial_page(
    sort: TrialSort = "val_error", order: SortOrder = "asc", limit: Limit = 50, offset: Offset = 0
) -> TrialPage:
    return TrialPage(sort, order == "desc", limit, offset)


TrialPageDep = Annotated[TrialPage, Depends(trial_page)]

UserCommand = Annotated[
    str | None,
    Query(
        max_length=MAX_USER_COMMAND,
        description="for a foreign search only (its trials did not report their configuration, "
        "or its stored command is not this project's): the trial command to run instead; it is "
        "shown back in the plan before anything starts",
    ),
]


def rerun_of(request: Request, command: UserCommand = None) -> Rerun:
    """How the service runs what it plans: its configured training service, and the command the
    user named (never the stored record's)."""
    return Rerun(training_service=request.app.state.settings.training_service, command=command)


RerunDep = Annotated[Rerun, Depends(rerun_of)]


def trial_filter(
    experiment: Experiment = None,
    model: Model = None,
    dataset: Dataset = None,
    status: Status = None,
    layers: Layers = None,
    budget: Budget = None,
) -> TrialSelection:
    """The trial filters of the query string, as the one value the queries take."""
    return TrialSelection(
        experiments=(experiment,) if experiment is not None else (), model=model, dataset=dataset,
        statuses=(status,) if status is not None else (),
        layers=(layers,) if layers is not None else (),
        budgets=(budget,) if budget is not None else (),
    )  # fmt: skip


def experiment_trial_filter(
    nni_id: str, status: Status = None, layers: Layers = None, budget: Budget = None
) -> TrialSelection:
    """The trials of the experiment in the path, filtered by the query string."""
    return trial_filter(experiment=nni_id, status=status, layers=layers, budget=budget)


ModelP = Annotated[str, Path(max_length=64, description="model, e.g. mlp4")]
DatasetP = Annotated[str, Path(max_length=64, description="data set, e.g. digits")]


def model_group(
    model: ModelP, dataset: DatasetP, budget: Budget = None, include_partial: IncludePartial = False
) -> Group:
    """The (model, data set, budget) group of the path and query string."""
    return Group(model, dataset, budget, include_partial)


TrialFilterDep = Annotated[TrialSelection, Depends(trial_filter)]
GroupDep = Annotated[Group, Depends(model_group)]
ExperimentTrialFilterDep = Annotated[TrialSelection, Depends(experiment_trial_filter)]


# ---------------------------------------------------------------- results UI
# Item types of the repeatable filters (a constraint on the Query would apply to the list).
FamilyItem = Annotated[str, StringConstraints(max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
LayersItem = Annotated[str, StringConstraints(max_length=128, pattern=r"^(none|\d+(,\d+)*)$")]
BudgetItem = Annotated[str, StringConstraints(max_length=128)]


def trial_selection(
    status: Annotated[list[TrialStatus], Query(description="any of these statuses")] = [],  # noqa: B006 - FastAPI copies defaults
    layers: Annotated[
        list[LayersItem], Query(description="any of these layer subsets ('none' or '3,4')")
    ] = [],  # noqa: B006
    regularizer: Annotated[
        list[FamilyItem], Query(description="any of these families: vanilla, nsr, l1, ...")
    ] = [],  # noqa: B006
    budget: Annotated[
        list[BudgetItem], Query(description="any of these budgets ('epochs=15 lr=0.1')")
    ] = [],  # noqa: B006
    min_error: Annotated[float | None, Query(ge=0, le=1e9, description="val error % ≥")] = None,
    max_error: Annotated[float | None, Query(ge=0, le=1e9, description="val error % ≤")] = None,
) -> TrialSelection:
    """The results pages' filters, as query parameters (repeat one for "any of")."""
    return TrialSelection(
        statuses=tuple(status), layers=tuple(layers), families=tuple(regularizer),
        budgets=tuple(budget), min_error=min_error, max_error=max_error,
    )  # fmt: skip


TrialSelectionDep = Annotated[TrialSelection, Depends(trial_selection)]
ImportanceMethod = Annotated[
    Literal["ped-anova", "fanova"],
    Query(description="optuna.importance evaluator: PED-ANOVA (fast, scores each λ where it "
          "took effect) or fANOVA (random forest; only parameters every trial has)"),
]  # fmt: skip
