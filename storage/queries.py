"""Typed read queries, named by what they return. The session is passed in; results are
pydantic models from ``storage.schemas``, never ORM rows."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

from storage.errors import InvalidValue, NotFound
from storage.models import DataVersion, Experiment, SyncError, Trial, TrialLayer
from storage.parse import effective_parameters
from storage.schemas import (
    BestConfig,
    BestLambdas,
    Comparison,
    ExperimentDetail,
    ExperimentSummary,
    GroupStats,
    LayerError,
    LayerLambda,
    LayerRecommendation,
    LayerRow,
    LayerVariance,
    ModelDataset,
    Page,
    SyncErrorItem,
    TrialDetail,
    TrialSummary,
)

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
MAX_LIMIT = 1000
# Offsets must fit the drivers' integers (a larger one overflowed SQLite's into a 500).
MAX_OFFSET = 2**31 - 1


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValue(f"limit={limit} is out of range: allowed 1..{MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidValue(f"offset={offset} is out of range: allowed 0..{MAX_OFFSET}")


def data_version(session: Session) -> int:
    """Goes up whenever an ingest changes results (cache key for derived answers)."""
    return session.scalar(select(DataVersion.version).where(DataVersion.id == 1)) or 0


# ---------------------------------------------------------------- experiments


def list_experiments(
    session: Session,
    *,
    model: str | None = None,
    dataset: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[ExperimentSummary]:
    _check_page(limit, offset)
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


# ---------------------------------------------------------------- trials


def _trial_summary(t: Trial, nni_id: str) -> TrialSummary:
    return TrialSummary(
        experiment=nni_id,
        trial_job_id=t.trial_job_id,
        sequence_id=t.sequence_id,
        model=t.model,
        dataset=t.dataset,
        status=t.status,
        layers=t.layers,
        regularizer=t.regularizer,
        seed=t.seed,
        val_error=t.val_error,
        test_error=t.test_error,
        best_epoch=t.best_epoch,
        epoch_seconds=t.epoch_seconds,
        parameters=t.parameters,
        start_time=t.start_time,
        end_time=t.end_time,
    )


def _trial_detail(session: Session, t: Trial, nni_id: str) -> TrialDetail:
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
    return _trial_detail(session, row[0], row[1])


@dataclass(frozen=True)
class TrialFilter:
    """Which trials a list or export covers; ``None`` means "any". One value for every route that
    filters trials, so a new filter is added in one place."""

    experiment: str | None = None
    model: str | None = None
    dataset: str | None = None
    status: str | None = None
    layers: str | None = None


def _trials_query(session: Session, where: TrialFilter) -> Select[Any]:
    q = select(Trial, Experiment.nni_id).join(Experiment, Trial.experiment_id == Experiment.id)
    if where.experiment is not None:
        known = select(Experiment.id).where(Experiment.nni_id == where.experiment)
        if session.scalar(known) is None:
            raise NotFound(f"unknown experiment {where.experiment!r}")
        q = q.where(Experiment.nni_id == where.experiment)
    if where.model is not None:
        q = q.where(Trial.model == where.model)
    if where.dataset is not None:
        q = q.where(Trial.dataset == where.dataset)
    if where.status is not None:
        q = q.where(Trial.status == where.status.upper())
    if where.layers is not None:
        q = q.where(Trial.layers == where.layers)
    return q


def list_trials(
    session: Session,
    where: TrialFilter = TrialFilter(),
    *,
    sort: TrialSort = "val_error",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page[TrialSummary]:
    _check_page(limit, offset)
    if sort not in SORT_COLUMNS:
        raise InvalidValue(f"sort={sort!r} is not allowed: one of {', '.join(SORT_COLUMNS)}")
    q = _trials_query(session, where)
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
    session: Session, where: TrialFilter = TrialFilter()
) -> tuple[list[str], Iterator[list[Any]]]:
    """Header and rows for a CSV export: fixed columns, then one per parameter and metric key.

    Memory stays bounded whatever the number of trials: the header comes from a first streamed
    pass over the parameters and metrics only, the rows from a second streamed query, read
    ``_CSV_BATCH`` at a time while the caller consumes them (keep ``session`` open until then).
    """
    q = _trials_query(session, where)
    param_keys: set[str] = set()
    metric_keys: set[str] = set()
    keys_q = q.with_only_columns(Trial.parameters, Trial.final_metrics)
    for params, metrics in session.execute(keys_q.execution_options(yield_per=_CSV_BATCH)):
        if len(param_keys) < MAX_CSV_KEYS:
            param_keys.update(list(params or {})[: MAX_CSV_KEYS - len(param_keys)])
        if len(metric_keys) < MAX_CSV_KEYS:
            metric_keys.update(list(metrics or {})[: MAX_CSV_KEYS - len(metric_keys)])
    pk, mk = sorted(param_keys), sorted(metric_keys)
    fixed = ["experiment", "trial_job_id", "model", "dataset", "status", "layers", "seed"]
    fixed += ["val_error", "test_error", "best_epoch", "final_raw"]
    header = fixed + [f"param.{k}" for k in pk] + [f"metric.{k}" for k in mk]

    def gen() -> Iterator[list[Any]]:
        rows = session.execute(q.order_by(Trial.id).execution_options(yield_per=_CSV_BATCH))
        for t, nni_id in rows:
            params, metrics = t.parameters or {}, t.final_metrics or {}
            yield [
                nni_id, t.trial_job_id, t.model, t.dataset, t.status, t.layers, t.seed,
                t.val_error, t.test_error, t.best_epoch, t.final_raw,
                *[params.get(k) for k in pk],
                *[metrics.get(k) for k in mk],
            ]  # fmt: skip
            session.expunge(t)  # the identity map would otherwise keep every trial read

    return header, gen()


# ---------------------------------------------------------------- (model, dataset) analyses


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


def _require_model_dataset(session: Session, model: str, dataset: str) -> None:
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


def _md(model: str, dataset: str) -> Any:
    return and_(Trial.model == model, Trial.dataset == dataset)


def best_config(session: Session, model: str, dataset: str) -> BestConfig:
    """The trial with the lowest validation error (NNI's "default") for (model, dataset)."""
    _require_model_dataset(session, model, dataset)
    row = session.execute(
        select(Trial, Experiment.nni_id)
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(_md(model, dataset), Trial.val_error.is_not(None))
        .order_by(Trial.val_error, Trial.id)
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(f"no trial of {model}/{dataset} has reported a validation error yet")
    n = session.scalar(
        select(func.count()).where(_md(model, dataset), Trial.val_error.is_not(None))
    )
    return BestConfig(
        model=model, dataset=dataset, trial=_trial_detail(session, row[0], row[1]), n_trials=n or 0
    )


def _best_per_layer_rows(session: Session, model: str, dataset: str) -> list[Any]:
    """Per single-layer ``layers`` value: the best trial (window function) and the count."""
    ranked = (
        select(
            Trial.id.label("id"),
            Trial.layers.label("layers"),
            Trial.val_error.label("val_error"),
            func.row_number()
            .over(partition_by=Trial.layers, order_by=(Trial.val_error, Trial.id))
            .label("rn"),
            func.count().over(partition_by=Trial.layers).label("n"),
        )
        .where(
            _md(model, dataset),
            Trial.family == "nsr",
            Trial.n_layers == 1,
            Trial.val_error.is_not(None),
        )
        .subquery()
    )
    return list(
        session.execute(
            select(ranked.c.id, ranked.c.layers, ranked.c.n).where(ranked.c.rn == 1)
        ).all()
    )


def best_lambda_per_layer(session: Session, model: str, dataset: str) -> BestLambdas:
    """For each layer, the λ of the best single-layer NSR trial on it."""
    _require_model_dataset(session, model, dataset)
    best = _best_per_layer_rows(session, model, dataset)
    ids = [r[0] for r in best]
    counts = {r[0]: r[2] for r in best}
    out = []
    if ids:
        lams = {
            (tid, layer): lam
            for tid, layer, lam in session.execute(
                select(TrialLayer.trial_id, TrialLayer.layer, TrialLayer.lam).where(
                    TrialLayer.trial_id.in_(ids)
                )
            )
        }
        q = (
            select(
                Trial.id, Trial.layers, Trial.val_error, Trial.test_error,
                Experiment.nni_id, Trial.trial_job_id,
            )
            .join(Experiment, Trial.experiment_id == Experiment.id)
            .where(Trial.id.in_(ids))
        )  # fmt: skip
        for tid, layers, val, test, nni_id, job in session.execute(q):
            k = int(layers)
            out.append(
                LayerLambda(
                    layer=k, lam=lams.get((tid, k)), val_error=val, test_error=test,
                    experiment=nni_id, trial_job_id=job, n_trials=counts[tid],
                )  # fmt: skip
            )
    out.sort(key=lambda r: r.layer)
    return BestLambdas(model=model, dataset=dataset, layers=out)


def layer_recommendation(session: Session, model: str, dataset: str) -> LayerRecommendation:
    """Layers by intra-class variance of the vanilla trials (the paper's RQ4 rule picks the
    largest), and beside it the single-layer config that actually gave the lowest error."""
    _require_model_dataset(session, model, dataset)
    var_q = (
        select(
            TrialLayer.layer,
            func.avg(TrialLayer.var_end),
            func.avg(TrialLayer.var_init),
            func.count(TrialLayer.var_end),
        )
        .where(
            TrialLayer.model == model,
            TrialLayer.dataset == dataset,
            TrialLayer.family == "vanilla",
            TrialLayer.var_end.is_not(None),
        )
        .group_by(TrialLayer.layer)
    )
    variance = [
        LayerVariance(layer=k, mean_var=float(v), mean_var_init=vi, n_trials=n)
        for k, v, vi, n in session.execute(var_q)
    ]
    variance.sort(key=lambda r: (-r.mean_var, r.layer))
    emp_q = (
        select(Trial.layers, func.min(Trial.val_error), func.avg(Trial.val_error), func.count())
        .where(
            _md(model, dataset),
            Trial.family == "nsr",
            Trial.n_layers == 1,
            Trial.val_error.is_not(None),
        )
        .group_by(Trial.layers)
    )
    empirical = [
        LayerError(layer=int(k), best_val_error=b, mean_val_error=float(m), n_trials=n)
        for k, b, m, n in session.execute(emp_q)
    ]
    empirical.sort(key=lambda r: (r.best_val_error, r.layer))
    rec = variance[0].layer if variance else None
    emp = empirical[0].layer if empirical else None
    return LayerRecommendation(
        model=model,
        dataset=dataset,
        variance_ranking=variance,
        recommended_layer=rec,
        empirical_ranking=empirical,
        empirical_best_layer=emp,
        agree=(rec == emp) if rec is not None and emp is not None else None,
    )


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _best_group(session: Session, model: str, dataset: str, family: str) -> GroupStats | None:
    """The configuration (trials equal up to the seed) with the lowest mean validation error."""
    q = (
        select(Trial.config_key, func.avg(Trial.val_error).label("m"), func.count().label("n"))
        .where(_md(model, dataset), Trial.family == family, Trial.val_error.is_not(None))
        .group_by(Trial.config_key)
        .order_by("m", func.count().desc(), Trial.config_key)
        .limit(1)
    )
    top = session.execute(q).first()
    if top is None:
        return None
    rows = session.execute(
        select(Trial.val_error, Trial.test_error, Trial.seed, Trial.parameters, Trial.layers)
        .where(
            _md(model, dataset),
            Trial.family == family,
            Trial.config_key == top[0],
            Trial.val_error.is_not(None),
        )
        .order_by(Trial.seed, Trial.id)
    ).all()
    vals = [r[0] for r in rows]
    tests = [r[1] for r in rows if r[1] is not None and math.isfinite(r[1])]
    params = effective_parameters(rows[0][3])
    return GroupStats(
        config_key=top[0],
        layers=rows[0][4],
        parameters=params,
        n=len(rows),
        seeds=[r[2] for r in rows],
        val_error_mean=statistics.fmean(vals),
        val_error_std=_std(vals),
        test_error_mean=statistics.fmean(tests) if tests else None,
        test_error_std=_std(tests),
    )


def compare(session: Session, model: str, dataset: str) -> Comparison:
    """Vanilla vs the best NSR configuration, mean ± std over seeds."""
    _require_model_dataset(session, model, dataset)
    vanilla = _best_group(session, model, dataset, "vanilla")
    nsr = _best_group(session, model, dataset, "nsr")
    val_gain = test_gain = None
    if vanilla and nsr:
        val_gain = vanilla.val_error_mean - nsr.val_error_mean
        if vanilla.test_error_mean is not None and nsr.test_error_mean is not None:
            test_gain = vanilla.test_error_mean - nsr.test_error_mean
    return Comparison(
        model=model,
        dataset=dataset,
        vanilla=vanilla,
        nsr=nsr,
        val_error_gain=val_gain,
        test_error_gain=test_gain,
    )


# ---------------------------------------------------------------- plot data (web UI)


def experiment_plot_data(session: Session, nni_id: str, best_curves: int = 5) -> dict[str, Any]:
    """Points for the experiment page's plots: val error vs λ per layer, variance per layer,
    and the per-epoch curves of the best trials."""
    exp_id = session.scalar(select(Experiment.id).where(Experiment.nni_id == nni_id))
    if exp_id is None:
        raise NotFound(f"unknown experiment {nni_id!r}")
    lam_rows = session.execute(
        select(TrialLayer.layer, TrialLayer.lam, Trial.val_error, Trial.trial_job_id, Trial.layers)
        .join(Trial, TrialLayer.trial_id == Trial.id)
        .where(
            Trial.experiment_id == exp_id,
            Trial.val_error.is_not(None),
            TrialLayer.lam.is_not(None),
            TrialLayer.lam > 0,
        )
        .order_by(TrialLayer.layer, TrialLayer.lam)
    ).all()
    lam_points: dict[int, dict[str, list[Any]]] = {}
    for layer, lam, val, job, layers in lam_rows:
        pts = lam_points.setdefault(layer, {"lam": [], "val_error": [], "text": []})
        pts["lam"].append(lam)
        pts["val_error"].append(val)
        pts["text"].append(f"{job} (layers {layers})")
    var_rows = session.execute(
        select(TrialLayer.layer, Trial.family, TrialLayer.var_init, TrialLayer.var_end)
        .join(Trial, TrialLayer.trial_id == Trial.id)
        .where(Trial.experiment_id == exp_id, TrialLayer.var_end.is_not(None))
        .order_by(TrialLayer.layer)
    ).all()
    variance: dict[str, dict[str, list[Any]]] = {}
    for layer, family, vi, ve in var_rows:
        series = variance.setdefault(family, {"layer": [], "var_end": [], "var_init": []})
        series["layer"].append(layer)
        series["var_end"].append(ve)
        series["var_init"].append(vi)
    best = session.execute(
        select(Trial.trial_job_id, Trial.layers, Trial.val_error, Trial.intermediate)
        .where(Trial.experiment_id == exp_id, Trial.val_error.is_not(None))
        .order_by(Trial.val_error, Trial.id)
        .limit(best_curves)
    ).all()
    curves = [
        {"trial": job, "layers": layers, "val_error": val, "curve": curve or []}
        for job, layers, val, curve in best
    ]
    return {"lambda": lam_points, "variance": variance, "curves": curves}


def trial_filters_valid(status: str | None) -> None:
    """Reject a status no NNI trial can have, naming the allowed ones."""
    allowed = {"WAITING", "RUNNING", "SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED",
               "EARLY_STOPPED", "UNKNOWN"}  # fmt: skip
    if status is not None and status.upper() not in allowed:
        raise InvalidValue(f"status={status!r} is not allowed: one of {sorted(allowed)}")
