"""Trials: one trial's detail, a sorted page of them, and the rows of a CSV export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from storage.errors import InvalidValue, NotFound
from storage.models import Experiment, Trial, TrialLayer
from storage.queries.experiments import get_experiment
from storage.queries.paging import check_page
from storage.queries.selection import TrialSelection, selection_conditions
from storage.schemas import LayerRow, Page, TrialDetail, TrialSummary

TrialSort = Literal[
    "val_error", "test_error", "seed", "sequence_id", "start_time", "trial_job_id", "status"
]
SORT_COLUMNS = {
    "val_error": Trial.val_error,
    "test_error": Trial.test_error,
    "seed": Trial.seed,
    "sequence_id": Trial.sequence_id,
    "start_time": Trial.start_time,
    "trial_job_id": Trial.trial_job_id,
    "status": Trial.status,
}


def _trial_summary(t: Trial, nni_id: str) -> TrialSummary:
    return TrialSummary(
        experiment=nni_id,
        trial_job_id=t.trial_job_id,
        sequence_id=t.sequence_id,
        model=t.model,
        dataset=t.dataset,
        status=t.status,
        layers=t.layers,
        family=t.family,
        regularizer=t.regularizer,
        seed=t.seed,
        budget=t.budget or "unknown",
        partial=t.partial,
        val_error=t.val_error,
        test_error=t.test_error,
        best_epoch=t.best_epoch,
        epoch_seconds=t.epoch_seconds,
        parameters=t.parameters,
        config=t.config,
        config_source=t.config_source,
        start_time=t.start_time,
        end_time=t.end_time,
    )


def trial_detail(session: Session, t: Trial, nni_id: str) -> TrialDetail:
    """The detail of stored trial ``t`` of experiment ``nni_id``, with its layer rows."""
    layers = session.execute(
        select(TrialLayer.layer, TrialLayer.lam, TrialLayer.var_init, TrialLayer.var_end)
        .where(TrialLayer.trial_id == t.id)
        .order_by(TrialLayer.layer)
    ).all()
    return TrialDetail(
        **_trial_summary(t, nni_id).model_dump(),
        final_metrics=t.final_metrics,
        final_raw=t.final_raw,
        intermediate=t.intermediate or [],
        layer_rows=[LayerRow(layer=r[0], lam=r[1], var_init=r[2], var_end=r[3]) for r in layers],
    )


def get_trial(session: Session, nni_id: str, trial_job_id: str) -> TrialDetail:
    row = session.execute(
        select(Trial, Experiment.nni_id)
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(Experiment.nni_id == nni_id, Trial.trial_job_id == trial_job_id)
    ).first()
    if row is None:
        get_experiment(session, nni_id)  # 404 names the experiment when that is what is unknown
        raise NotFound(f"unknown trial {trial_job_id!r} in experiment {nni_id!r}")
    return trial_detail(session, row[0], row[1])


def _trials_query(session: Session, sel: TrialSelection) -> Select[Any]:
    return (
        select(Trial, Experiment.nni_id)
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(*selection_conditions(session, sel))
    )


def list_trials(
    session: Session,
    sel: TrialSelection = TrialSelection(),
    *,
    sort: TrialSort = "val_error",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[TrialSummary]:
    check_page(limit, offset)
    if sort not in SORT_COLUMNS:
        raise InvalidValue(f"sort={sort!r} is not allowed: one of {', '.join(SORT_COLUMNS)}")
    q = _trials_query(session, sel)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    col = SORT_COLUMNS[sort]
    # Rows without a value go last in both directions (portable NULLS LAST).
    q = q.order_by(col.is_(None), col.desc() if descending else col.asc(), Trial.id)
    rows = session.execute(q.limit(limit).offset(offset)).all()
    items = [_trial_summary(t, nni_id) for t, nni_id in rows]
    return Page[TrialSummary](total=total, limit=limit, offset=offset, items=items)


# Columns of a CSV export beyond the fixed ones: parameter and metric keys are the files' own, so
# a hostile experiment could name millions; past this many the rest are left out.
MAX_CSV_KEYS = 1000
_CSV_BATCH = 1000


def iter_trials_csv_rows(
    session: Session, sel: TrialSelection = TrialSelection()
) -> tuple[list[str], Iterator[list[Any]]]:
    """Header and rows for a CSV export: fixed columns, then one per parameter and metric key.

    Memory stays bounded whatever the number of trials: the header comes from a first streamed
    pass over the parameters and metrics only, the rows from a second streamed query, read
    ``_CSV_BATCH`` at a time while the caller consumes them (keep ``session`` open until then).
    """
    q = _trials_query(session, sel)
    param_keys: set[str] = set()
    metric_keys: set[str] = set()
    keys_q = q.with_only_columns(Trial.parameters, Trial.final_metrics)
    for params, metrics in session.execute(keys_q.execution_options(yield_per=_CSV_BATCH)):
        if len(param_keys) < MAX_CSV_KEYS:
            param_keys.update(list(params or {})[: MAX_CSV_KEYS - len(param_keys)])
        if len(metric_keys) < MAX_CSV_KEYS:
            metric_keys.update(list(metrics or {})[: MAX_CSV_KEYS - len(metric_keys)])
    pk, mk = sorted(param_keys), sorted(metric_keys)
    fixed = ["experiment", "trial_job_id", "model", "dataset", "status", "layers", "seed",
             "budget"]
    fixed += ["val_error", "test_error", "best_epoch", "final_raw"]
    header = fixed + [f"param.{k}" for k in pk] + [f"metric.{k}" for k in mk]

    def gen() -> Iterator[list[Any]]:
        rows = session.execute(q.order_by(Trial.id).execution_options(yield_per=_CSV_BATCH))
        for t, nni_id in rows:
            params, metrics = t.parameters or {}, t.final_metrics or {}
            yield [
                nni_id, t.trial_job_id, t.model, t.dataset, t.status, t.layers, t.seed, t.budget,
                t.val_error, t.test_error, t.best_epoch, t.final_raw,
                *[params.get(k) for k in pk],
                *[metrics.get(k) for k in mk],
            ]  # fmt: skip
            session.expunge(t)  # the identity map would otherwise keep every trial read

    return header, gen()
