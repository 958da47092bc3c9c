"""(model, data set, budget) groups: which exist, their budgets, and the trial sets an answer
ranks within one of them (a search's trials or its confirmation runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from storage.errors import InvalidValue, NotFound
from storage.models import Experiment, Trial
from storage.schemas import ModelDataset

Role = Literal["search", "confirmation"]


def list_models(session: Session) -> list[ModelDataset]:
    q = (
        select(
            Trial.model,
            Trial.dataset,
            func.count(),
            func.count(func.distinct(Trial.experiment_id)),
            func.min(Trial.val_error),
        )
        .where(Trial.model.is_not(None), Trial.dataset.is_not(None))
        .group_by(Trial.model, Trial.dataset)
        .order_by(Trial.model, Trial.dataset)
    )
    return [
        ModelDataset(model=m, dataset=d, n_trials=n, n_experiments=ne, best_val_error=b)
        for m, d, n, ne, b in session.execute(q)
    ]


def require_model_dataset(session: Session, model: str, dataset: str) -> None:
    """NotFound naming what is unknown when (model, dataset) has no trial."""
    hit = session.scalar(
        select(Trial.id).where(Trial.model == model, Trial.dataset == dataset).limit(1)
    )
    if hit is not None:
        return
    models = sorted({m for (m,) in session.execute(select(Trial.model).distinct()) if m})
    if model not in models:
        raise NotFound(f"unknown model {model!r}: known models are {models or 'none yet'}")
    sets = sorted(
        {d for (d,) in session.execute(select(Trial.dataset).where(Trial.model == model).distinct())
         if d}
    )  # fmt: skip
    raise NotFound(f"unknown dataset {dataset!r} for model {model!r}: known are {sets}")


@dataclass(frozen=True)
class Group:
    """The trials an answer ranks: one (model, data set, training budget), full-budget search
    trials only unless ``include_partial``; ``budget`` None = the budget with the most trials."""

    model: str
    dataset: str
    budget: str | None = None
    include_partial: bool = False


@dataclass(frozen=True)
class BudgetChoice:
    """The budget a group is answered for, and every budget stored for it with its trials."""

    budget: str
    budgets: dict[str, int]


def list_budgets(session: Session, model: str, dataset: str) -> dict[str, int]:
    """Every training budget stored for (model, dataset), with its number of trials."""
    full = func.sum(case((Trial.partial.is_(False), 1), else_=0))
    rows = session.execute(
        select(Trial.budget, func.count(), full)
        .where(Trial.model == model, Trial.dataset == dataset, Trial.val_error.is_not(None))
        .group_by(Trial.budget)
    ).all()
    # Most full-budget trials first: that is the default answer's budget.
    rows = sorted(rows, key=lambda r: (-(r[2] or 0), -r[1], r[0] or ""))
    return {b or "unknown": n for b, n, _ in rows}


def resolve_budget(session: Session, group: Group) -> BudgetChoice:
    """The budget answered for (the group's, else the one with the most trials) and every
    budget with its count; an unknown budget is InvalidValue naming the stored ones."""
    require_model_dataset(session, group.model, group.dataset)
    budgets = list_budgets(session, group.model, group.dataset)
    if group.budget is None:
        if not budgets:
            raise NotFound(
                f"no trial of {group.model}/{group.dataset} has reported a validation error yet"
            )
        return BudgetChoice(next(iter(budgets)), budgets)  # the most trials (ties: by name)
    if group.budget not in budgets:
        raise InvalidValue(
            f"budget={group.budget!r} has no trials for {group.model}/{group.dataset}; "
            f"stored budgets: {list(budgets) or 'none'}"
        )
    return BudgetChoice(group.budget, budgets)


@dataclass(frozen=True)
class TrialSet:
    """The trials of one group at one budget that have a validation error: its searches'
    (full-budget unless ``group.include_partial``) or its confirmation runs' (always
    full-budget), optionally narrowed to one family, layer subset or configuration."""

    group: Group
    budget: str
    role: Role = "search"
    family: str | None = None
    layers: str | None = None
    config_key: str | None = None
    experiment: str | None = None  # one NNI experiment's trials (a confirmation to extend)


def search_trials(group: Group, budget: str) -> TrialSet:
    return TrialSet(group, budget, "search")


def confirmation_trials(group: Group, budget: str) -> TrialSet:
    return TrialSet(group, budget, "confirmation")


def trial_set_conditions(trials: TrialSet) -> list[ColumnElement[bool]]:
    """The WHERE conditions on ``Trial`` of ``trials``."""
    group = trials.group
    role_ids = select(Experiment.id).where(Experiment.role == trials.role).scalar_subquery()
    conds: list[ColumnElement[bool]] = [
        Trial.model == group.model,
        Trial.dataset == group.dataset,
        Trial.budget == trials.budget,
        Trial.val_error.is_not(None),
        Trial.experiment_id.in_(role_ids),
    ]
    if trials.role == "confirmation" or not group.include_partial:
        conds.append(Trial.partial.is_(False))
    if trials.family is not None:
        conds.append(Trial.family == trials.family)
    if trials.layers is not None:
        conds.append(Trial.layers == trials.layers)
    if trials.config_key is not None:
        conds.append(Trial.config_key == trials.config_key)
    if trials.experiment is not None:
        one = select(Experiment.id).where(Experiment.nni_id == trials.experiment)
        conds.append(Trial.experiment_id.in_(one.scalar_subquery()))
    return conds


def has_trials(session: Session, trials: TrialSet) -> bool:
    hit = session.scalar(select(Trial.id).where(*trial_set_conditions(trials)).limit(1))
    return hit is not None


def count_trials(session: Session, trials: TrialSet) -> int:
    q = select(func.count()).select_from(Trial).where(*trial_set_conditions(trials))
    return session.scalar(q) or 0


def _distinct(session: Session, column: Any, trials: TrialSet) -> list[Any]:
    q = select(column).where(*trial_set_conditions(trials)).distinct()
    return list(session.scalars(q).all())


def list_families(session: Session, trials: TrialSet) -> list[str]:
    """The regularizer families among ``trials``, sorted."""
    return sorted(_distinct(session, Trial.family, trials))


def list_layer_sets(session: Session, trials: TrialSet) -> list[str]:
    """The layer subsets among ``trials``: fewest layers first, then by name."""
    layers = _distinct(session, Trial.layers, trials)
    return sorted(layers, key=lambda s: (len(s.split(",")), s))


def list_result_groups(session: Session) -> list[Group]:
    """Every (model, data set, budget) that has a full-budget trial with a validation error."""
    rows = session.execute(
        select(Trial.model, Trial.dataset, Trial.budget)
        .where(
            Trial.model.is_not(None),
            Trial.dataset.is_not(None),
            Trial.val_error.is_not(None),
            Trial.partial.is_(False),
        )
        .distinct()
    ).all()
    return [Group(m, d, b or "unknown") for m, d, b in rows]


def list_seeds(session: Session, model: str, dataset: str) -> set[int]:
    """Every seed a stored trial of (model, dataset) used."""
    q = select(Trial.seed).where(Trial.model == model, Trial.dataset == dataset).distinct()
    return {s for s in session.scalars(q) if s is not None}
