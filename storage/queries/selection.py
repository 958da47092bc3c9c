"""Which trials a list, export, plot or importance covers: one selection type for every route
that filters trials, so a new filter is added in one place."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from storage.errors import InvalidValue, NotFound
from storage.models import Experiment, Trial


@dataclass(frozen=True)
class TrialSelection:
    """The selected trials. Empty tuples and None mean "any"; several values of one field mean
    "any of them". The experiment page applies the same fields in the browser
    (service/web/static/app.js, ``matches``)."""

    experiments: tuple[str, ...] = ()
    model: str | None = None
    dataset: str | None = None
    statuses: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()
    min_error: float | None = None
    max_error: float | None = None


def selection_conditions(session: Session, sel: TrialSelection) -> list[ColumnElement[bool]]:
    """The WHERE conditions on ``Trial`` of ``sel``; NotFound naming an unknown experiment,
    InvalidValue for an empty error range."""
    conds: list[ColumnElement[bool]] = []
    if sel.experiments:
        known = dict(
            session.execute(
                select(Experiment.nni_id, Experiment.id).where(
                    Experiment.nni_id.in_(sel.experiments)
                )
            ).all()
        )
        missing = [e for e in sel.experiments if e not in known]
        if missing:
            raise NotFound(f"unknown experiment {missing[0]!r}")
        conds.append(Trial.experiment_id.in_(list(known.values())))
    if sel.model is not None:
        conds.append(Trial.model == sel.model)
    if sel.dataset is not None:
        conds.append(Trial.dataset == sel.dataset)
    if sel.statuses:
        conds.append(Trial.status.in_([s.upper() for s in sel.statuses]))
    if sel.layers:
        conds.append(Trial.layers.in_(sel.layers))
    if sel.families:
        conds.append(Trial.family.in_(sel.families))
    if sel.budgets:
        conds.append(Trial.budget.in_(sel.budgets))
    if sel.min_error is not None:
        conds.append(Trial.val_error >= sel.min_error)
    if sel.max_error is not None:
        conds.append(Trial.val_error <= sel.max_error)
    if sel.min_error is not None and sel.max_error is not None and sel.min_error > sel.max_error:
        raise InvalidValue(
            f"min_error={sel.min_error} is above max_error={sel.max_error}: the range is empty"
        )
    return conds
