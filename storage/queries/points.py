"""Trials as plot columns (the experiment and compare pages) and the rows the importance scores:
each with the λ or strength that took effect in it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import Text, cast, func, literal, select
from sqlalchemy.orm import Session

from storage.errors import InvalidValue
from storage.models import Experiment, Trial
from storage.queries.experiments import get_experiment
from storage.queries.groups import TrialSet, require_model_dataset, trial_set_conditions
from storage.queries.selection import TrialSelection, selection_conditions
from storage.schemas import CompareGroup, CompareSeries, TrialPoints
from trials import contract


def stored_strengths(
    config: dict[str, Any] | None, parameters: dict[str, Any] | None
) -> contract.Strengths:
    """What took effect in a stored trial: ``contract.effective_strengths`` of its effective
    configuration (its flattened NNI parameters when it has none). ``other`` keeps only the keys
    its NNI parameters carry: what was searched, not every default the trial ran with."""
    searched = contract.flatten_nested(parameters or {}, strict=False)
    found = contract.effective_strengths(config if config is not None else searched)
    return replace(found, other={k: v for k, v in found.other.items() if k in searched})


def _text_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _raw_json(column: Any) -> Any:
    # The JSON columns as text (a no-op on SQLite; PostgreSQL's driver would decode them with
    # json.loads), decoded by orjson in ``_decoded``: json.loads of 30,000 values was half the
    # time of a 10,000-trial page.
    return cast(column, Text)


def _decoded(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value  # PostgreSQL's driver decodes JSON itself


def _var_end_layer(key: str) -> str | None:
    if key.startswith("var_") and not key.endswith("_init") and key[4:].isdigit():
        return key[4:]
    return None


def trial_points(session: Session, sel: TrialSelection, *, curves: bool = True) -> TrialPoints:
    """The selected trials as columns, in completion order (end time, then sequence)."""
    cols: list[Any] = [
        Experiment.nni_id, Trial.trial_job_id, Trial.sequence_id, Trial.status, Trial.layers,
        Trial.family, Trial.seed, Trial.val_error, Trial.test_error, Trial.best_epoch,
        Trial.end_time, _raw_json(Trial.parameters), _raw_json(Trial.config),
        _raw_json(Trial.final_metrics), Trial.budget, Trial.partial,
        _raw_json(Trial.intermediate) if curves else literal(None),
    ]  # fmt: skip
    q = (
        select(*cols)
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(*selection_conditions(session, sel))
        .order_by(Trial.end_time.is_(None), Trial.end_time, Trial.sequence_id, Trial.id)
    )
    rows = session.execute(q).all()
    n = len(rows)
    columns = zip(*rows, strict=True) if rows else [()] * len(cols)
    (nni_ids, jobs, seqs, statuses, layers, families, seeds, vals, tests, best_epochs, ends,
     params, configs, metrics, budgets, partials, inters) = columns  # fmt: skip
    exp_index: dict[str, int] = {}
    experiment = [exp_index.setdefault(e, len(exp_index)) for e in nni_ids]
    lam: dict[str, list[float | None]] = {}
    var_end: dict[str, list[float | None]] = {}
    strength: list[float | None] = []
    other: list[str] = []
    for i in range(n):
        found = stored_strengths(_decoded(configs[i]), _decoded(params[i]))
        for k, v in found.lambdas.items():
            col = lam.get(str(k))
            if col is None:
                col = lam[str(k)] = [None] * n
            col[i] = v
        strength.append(found.strength)
        other.append(" ".join(f"{k}={_text_value(v)}" for k, v in sorted(found.other.items())))
        for key, value in (_decoded(metrics[i]) or {}).items():
            layer = _var_end_layer(key)
            if layer is not None:
                if layer not in var_end:
                    var_end[layer] = [None] * n
                var_end[layer][i] = value
    curve_lists = [_decoded(c) or [] for c in inters] if curves else [[] for _ in range(n)]
    # model_construct: every value comes from typed columns; validating 10,000-long lists again
    # would cost more than the query.
    return TrialPoints.model_construct(
        experiments=list(exp_index), experiment=experiment, trial=list(jobs),
        sequence=list(seqs), status=list(statuses), layers=list(layers), family=list(families),
        seed=list(seeds), budget=list(budgets),
        partial=[bool(p) or s == contract.EARLY_STOPPED
                 for p, s in zip(partials, statuses, strict=True)],
        val_error=list(vals), test_error=list(tests), best_epoch=list(best_epochs),
        end_time=list(ends), lam=lam, strength=strength, other=other, var_end=var_end,
        curves=curve_lists,
    )  # fmt: skip


def compare_groups(session: Session) -> list[CompareGroup]:
    """(model, data set, budget) groups the compare page offers."""
    q = (
        select(Trial.model, Trial.dataset, Trial.budget, func.count())
        .where(Trial.model.is_not(None), Trial.dataset.is_not(None))
        .group_by(Trial.model, Trial.dataset, Trial.budget)
        .order_by(Trial.model, Trial.dataset, Trial.budget)
    )
    return [
        CompareGroup(model=m, dataset=d, budget=b, n_trials=n) for m, d, b, n in session.execute(q)
    ]


def compare_series(
    session: Session, experiments: list[str], groups: list[str]
) -> list[CompareSeries]:
    """One series per experiment id and per ``model/dataset[/budget]`` group, in that order."""
    out = []
    for nni_id in experiments:
        exp = get_experiment(session, nni_id)
        label = f"{nni_id} ({exp.model or '?'}/{exp.dataset or '?'})"
        pts = trial_points(session, TrialSelection(experiments=(nni_id,)), curves=False)
        out.append(CompareSeries(label=label, key=nni_id, points=pts))
    for key in groups:
        parts = key.split("/", 2)
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise InvalidValue(f"group={key!r} is not model/dataset or model/dataset/budget")
        model, dataset = parts[0], parts[1]
        require_model_dataset(session, model, dataset)
        budgets = (parts[2],) if len(parts) == 3 else ()
        sel = TrialSelection(model=model, dataset=dataset, budgets=budgets)
        pts = trial_points(session, sel, curves=False)
        out.append(CompareSeries(label=key, key=key, points=pts))
    return out


@dataclass(frozen=True)
class ScoredTrial:
    """A trial with a finite validation error, and what took effect in it."""

    layers: str
    family: str
    seed: int | None
    budget: str | None
    val_error: float
    strengths: contract.Strengths


def list_scored_trials(session: Session, sel: TrialSelection | TrialSet) -> list[ScoredTrial]:
    """The selected trials that have a finite validation error, in the order they were stored.
    A ``TrialSet`` selects as every group answer does: one budget, its searches' full-budget
    trials (or its confirmation runs'), optionally one family."""
    if isinstance(sel, TrialSet):
        where = trial_set_conditions(sel)
    else:
        where = selection_conditions(session, sel)
    q = (
        select(
            Trial.layers, Trial.family, Trial.seed, Trial.budget, Trial.val_error,
            Trial.config, Trial.parameters,
        )
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(*where, Trial.val_error.is_not(None))
        .order_by(Trial.id)
    )  # fmt: skip
    return [
        ScoredTrial(layers, family, seed, budget, float(val), stored_strengths(config, params))
        for layers, family, seed, budget, val, config, params in session.execute(q)
        if math.isfinite(val)
    ]
