"""Typed read queries, named by what they return. The session is passed in; results are
pydantic models from ``storage.schemas``, never ORM rows."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Select, Text, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session

from storage.errors import InvalidValue, NotFound
from storage.models import DataVersion, Experiment, SyncError, Trial, TrialLayer
from storage.parse import effective_parameters, parse_layers
from storage.schemas import (
    WINNERS_CURSE,
    BestConfig,
    BestLambdas,
    CompareGroup,
    CompareSeries,
    Comparison,
    ConfigVerdict,
    Difference,
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
    TrialPoints,
    TrialSummary,
)
from storage.statistics import difference
from trials.contract import LAMBDA_KEY, STRENGTH_KEYS

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
    budget: str | None = None


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
    if where.budget is not None:
        q = q.where(Trial.budget == where.budget)
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


@dataclass(frozen=True)
class Group:
    """The trials an answer ranks: one (model, data set, training budget), full-budget search
    trials only unless ``include_partial``; ``budget`` None = the budget with the most trials."""

    model: str
    dataset: str
    budget: str | None = None
    include_partial: bool = False


def _role_ids(role: str) -> Any:
    return select(Experiment.id).where(Experiment.role == role).scalar_subquery()


def list_budgets(session: Session, model: str, dataset: str) -> dict[str, int]:
    """Every training budget stored for (model, dataset), with its number of trials."""
    full = func.sum(case((Trial.partial.is_(False), 1), else_=0))
    rows = session.execute(
        select(Trial.budget, func.count(), full)
        .where(_md(model, dataset), Trial.val_error.is_not(None))
        .group_by(Trial.budget)
    ).all()
    # Most full-budget trials first: that is the default answer's budget.
    rows = sorted(rows, key=lambda r: (-(r[2] or 0), -r[1], r[0] or ""))
    return {b or "unknown": n for b, n, _ in rows}


def _resolve(session: Session, group: Group) -> tuple[str, dict[str, int]]:
    """(the budget answered for, every budget with its count); an unknown budget names them."""
    _require_model_dataset(session, group.model, group.dataset)
    budgets = list_budgets(session, group.model, group.dataset)
    if group.budget is None:
        if not budgets:
            raise NotFound(
                f"no trial of {group.model}/{group.dataset} has reported a validation error yet"
            )
        return next(iter(budgets)), budgets  # the most trials (ties: by name)
    if group.budget not in budgets:
        raise InvalidValue(
            f"budget={group.budget!r} has no trials for {group.model}/{group.dataset}; "
            f"stored budgets: {list(budgets) or 'none'}"
        )
    return group.budget, budgets


def _search_trials(group: Group, budget: str) -> list[Any]:
    """Conditions: the group's search trials with a validation error."""
    conds = [
        _md(group.model, group.dataset),
        Trial.budget == budget,
        Trial.val_error.is_not(None),
        Trial.experiment_id.in_(_role_ids("search")),
    ]
    if not group.include_partial:
        conds.append(Trial.partial.is_(False))
    return conds


def _confirmation_trials(group: Group, budget: str) -> list[Any]:
    return [
        _md(group.model, group.dataset),
        Trial.budget == budget,
        Trial.val_error.is_not(None),
        Trial.partial.is_(False),
        Trial.experiment_id.in_(_role_ids("confirmation")),
    ]


def best_config(session: Session, group: Group) -> BestConfig:
    """The search trial with the lowest validation error (NNI's "default", never the test error)
    in the group, and that configuration's confirmation runs when there are any."""
    budget, budgets = _resolve(session, group)
    conds = _search_trials(group, budget)
    row = session.execute(
        select(Trial, Experiment.nni_id)
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(*conds)
        .order_by(Trial.val_error, Trial.id)
        .limit(1)
    ).first()
    if row is None:
        raise NotFound(
            f"no full-budget search trial of {group.model}/{group.dataset} [{budget}] has a "
            "validation error yet (include_partial=true ranks early-stopped ones)"
        )
    n = session.scalar(select(func.count()).select_from(Trial).where(*conds))
    confirmation = _group_stats(
        session, [*_confirmation_trials(group, budget), Trial.config_key == row[0].config_key]
    )
    return BestConfig(
        model=group.model,
        dataset=group.dataset,
        budget=budget,
        budgets=budgets,
        trial=_trial_detail(session, row[0], row[1]),
        n_trials=n or 0,
        confirmed=confirmation is not None,
        confirmation=confirmation,
        caveat=None if confirmation else _caveat(group),
    )


def _caveat(group: Group) -> str:
    return WINNERS_CURSE.format(model=group.model, dataset=group.dataset)


def _best_per_layer_rows(session: Session, conds: list[Any]) -> list[Any]:
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
        .where(*conds, Trial.family == "nsr", Trial.n_layers == 1)
        .subquery()
    )
    return list(
        session.execute(
            select(ranked.c.id, ranked.c.layers, ranked.c.n).where(ranked.c.rn == 1)
        ).all()
    )


def best_lambda_per_layer(session: Session, group: Group) -> BestLambdas:
    """For each layer, the λ of the best single-layer NSR search trial on it."""
    budget, budgets = _resolve(session, group)
    best = _best_per_layer_rows(session, _search_trials(group, budget))
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
    return BestLambdas(
        model=group.model, dataset=group.dataset, budget=budget, budgets=budgets, layers=out,
        caveat="each λ is the best single search trial on its layer (one seed); "
        "compare gives the confirmed verdict",
    )  # fmt: skip


def layer_recommendation(session: Session, group: Group) -> LayerRecommendation:
    """Layers by intra-class variance of the vanilla trials (the paper's RQ4 rule picks the
    largest), and beside it the single-layer config that actually gave the lowest error."""
    budget, budgets = _resolve(session, group)
    conds = _search_trials(group, budget)
    var_q = (
        select(
            TrialLayer.layer,
            func.avg(TrialLayer.var_end),
            func.avg(TrialLayer.var_init),
            func.count(TrialLayer.var_end),
        )
        .join(Trial, TrialLayer.trial_id == Trial.id)
        .where(*conds, TrialLayer.family == "vanilla", TrialLayer.var_end.is_not(None))
        .group_by(TrialLayer.layer)
    )
    variance = [
        LayerVariance(layer=k, mean_var=float(v), mean_var_init=vi, n_trials=n)
        for k, v, vi, n in session.execute(var_q)
    ]
    variance.sort(key=lambda r: (-r.mean_var, r.layer))
    emp_q = (
        select(Trial.layers, func.min(Trial.val_error), func.avg(Trial.val_error), func.count())
        .where(*conds, Trial.family == "nsr", Trial.n_layers == 1)
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
        model=group.model,
        dataset=group.dataset,
        budget=budget,
        budgets=budgets,
        variance_ranking=variance,
        recommended_layer=rec,
        empirical_ranking=empirical,
        empirical_best_layer=emp,
        agree=(rec == emp) if rec is not None and emp is not None else None,
    )


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _group_stats(session: Session, conds: list[Any]) -> GroupStats | None:
    """Mean ± std over the trials matching ``conds`` (one configuration over seeds)."""
    rows = session.execute(
        select(
            Trial.val_error, Trial.test_error, Trial.seed, Trial.config, Trial.parameters,
            Trial.layers, Trial.family, Trial.config_key, Experiment.nni_id,
        )
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(*conds)
        .order_by(Trial.seed, Trial.id)
    ).all()  # fmt: skip
    if not rows:
        return None
    vals = [r[0] for r in rows]
    tests = [r[1] for r in rows if r[1] is not None and math.isfinite(r[1])]
    config = rows[0][3] if rows[0][3] is not None else rows[0][4]
    return GroupStats(
        config_key=rows[0][7],
        family=rows[0][6],
        layers=rows[0][5],
        parameters=effective_parameters(config or {}),
        n=len(rows),
        seeds=[r[2] for r in rows],
        val_error_mean=statistics.fmean(vals),
        val_error_std=_std(vals),
        test_error_mean=statistics.fmean(tests) if tests else None,
        test_error_std=_std(tests),
        test_errors=tests,
        experiments=sorted({r[8] for r in rows}),
    )


def _ranked_configs(session: Session, conds: list[Any], family: str | None) -> list[str]:
    """Configuration keys by mean validation error (more trials first on ties)."""
    q = (
        select(Trial.config_key, func.avg(Trial.val_error).label("m"), func.count().label("n"))
        .where(*conds)
        .group_by(Trial.config_key)
        .order_by("m", func.count().desc(), Trial.config_key)
    )
    if family is not None:
        q = q.where(Trial.family == family)
    return [r[0] for r in session.execute(q)]


def _versus(vanilla: GroupStats | None, stats: GroupStats) -> Difference | None:
    if vanilla is None or stats.config_key == vanilla.config_key:
        return None
    pairs_v = [(s, t) for s, t in zip(vanilla.seeds, vanilla.test_errors, strict=False)]
    pairs_c = [(s, t) for s, t in zip(stats.seeds, stats.test_errors, strict=False)]
    if not pairs_v or not pairs_c:
        return None
    return difference(
        [t for _, t in pairs_v], [t for _, t in pairs_c],
        [s for s, _ in pairs_v], [s for s, _ in pairs_c],
    )  # fmt: skip


def compare(session: Session, group: Group) -> Comparison:
    """Vanilla vs NSR (and every other regularizer family) in one (model, data set, budget):
    from confirmation runs over fresh seeds when they exist, else from the search (unconfirmed,
    with the winner's-curse caveat); mean ± std, bootstrap CI and p-values from SciPy."""
    budget, budgets = _resolve(session, group)
    confirm_conds = _confirmation_trials(group, budget)
    confirmed_keys = _ranked_configs(session, confirm_conds, None)
    confirmed = bool(confirmed_keys)
    conds = confirm_conds if confirmed else _search_trials(group, budget)
    vanilla_keys = _ranked_configs(session, conds, "vanilla")
    vanilla = (
        _group_stats(session, [*conds, Trial.config_key == vanilla_keys[0]])
        if vanilla_keys else None
    )  # fmt: skip
    if confirmed:
        keys = [k for k in confirmed_keys if k not in vanilla_keys]
    else:
        # Unconfirmed: the best configuration of each regularizer family.
        families = session.scalars(
            select(Trial.family).where(*conds, Trial.family.not_in(["vanilla", "unknown"]))
            .distinct()
        ).all()  # fmt: skip
        keys = [ks[0] for f in families if (ks := _ranked_configs(session, conds, f))]
    verdicts = []
    for key in keys:
        stats = _group_stats(session, [*conds, Trial.config_key == key])
        if stats is not None:
            verdicts.append(
                ConfigVerdict(stats=stats, versus_vanilla=_versus(vanilla, stats), versus_nsr=None)
            )
    verdicts.sort(key=lambda v: (v.stats.val_error_mean, v.stats.config_key))
    nsr = next((v for v in verdicts if v.stats.family == "nsr"), None)
    if nsr is not None:  # every other family against the best NSR configuration (Table 4)
        for v in verdicts:
            if v.stats.family != "nsr":
                v.versus_nsr = _versus(nsr.stats, v.stats)
    val_gain = test_gain = None
    if vanilla and nsr:
        val_gain = vanilla.val_error_mean - nsr.stats.val_error_mean
        if vanilla.test_error_mean is not None and nsr.stats.test_error_mean is not None:
            test_gain = vanilla.test_error_mean - nsr.stats.test_error_mean
    experiments = sorted({e for v in verdicts for e in v.stats.experiments}) if confirmed else []
    return Comparison(
        model=group.model,
        dataset=group.dataset,
        budget=budget,
        budgets=budgets,
        confirmed=confirmed,
        confirmation_experiments=experiments,
        caveat=None if confirmed else _caveat(group),
        vanilla=vanilla,
        nsr=nsr.stats if nsr else None,
        configurations=verdicts,
        val_error_gain=val_gain,
        test_error_gain=test_gain,
        test_error_difference=nsr.versus_vanilla if nsr else None,
    )


# ---------------------------------------------------------------- plot data (web UI)


def trial_filters_valid(status: str | None) -> None:
    """Reject a status no NNI trial can have, naming the allowed ones."""
    allowed = {"WAITING", "RUNNING", "SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED",
               "EARLY_STOPPED", "UNKNOWN"}  # fmt: skip
    if status is not None and status.upper() not in allowed:
        raise InvalidValue(f"status={status!r} is not allowed: one of {sorted(allowed)}")


# ---------------------------------------------------------------- results UI (issue 14)
# Read queries of the experiment and compare pages and of the importance endpoint (the optuna
# part is storage/importance.py). One section, appended, so that other storage work merges
# around it.


def budget_column() -> Any | None:
    # Trial.budget comes with the storage change of issue 10; until a branch has it, the budget
    # filter and column are absent rather than wrong.
    return getattr(Trial, "budget", None)


def partial_column() -> Any | None:
    return getattr(Trial, "partial", None)


@dataclass(frozen=True)
class TrialSelection:
    """The trials a results page, plot or importance covers. Empty tuples and None mean "any";
    several values of one field mean "any of them". The experiment page applies the same
    fields in the browser (service/web/static/app.js, ``matches``)."""

    experiments: tuple[str, ...] = ()
    model: str | None = None
    dataset: str | None = None
    statuses: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()
    min_error: float | None = None
    max_error: float | None = None


def selection_conditions(session: Session, sel: TrialSelection) -> list[Any]:
    conds: list[Any] = []
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
    budget = budget_column()
    if sel.budgets and budget is not None:
        conds.append(budget.in_(sel.budgets))
    if sel.min_error is not None:
        conds.append(Trial.val_error >= sel.min_error)
    if sel.max_error is not None:
        conds.append(Trial.val_error <= sel.max_error)
    if sel.min_error is not None and sel.max_error is not None and sel.min_error > sel.max_error:
        raise InvalidValue(
            f"min_error={sel.min_error} is above max_error={sel.max_error}: the range is empty"
        )
    return conds


def _finite_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def effective_strengths(
    params: dict[str, Any], family: str
) -> tuple[dict[int, float], float | None, dict[str, Any]]:
    """What took effect in a trial: NSR's λ per regularized layer, a baseline's strength, and
    the other parameters that change the result. The λ of a layer outside ``layers`` changed
    nothing and is left out (it would mislead the table, the plots and the importance)."""
    idx = parse_layers(params.get("layers"))[1]
    lams: dict[int, float] = {}
    if family == "nsr" and idx:
        for k in idx:
            lam = _finite_or_none(params.get(f"lambda_{k}"))
            if lam is not None:
                lams[k] = lam
    key = STRENGTH_KEYS.get(family)
    strength = _finite_or_none(params.get(key)) if key else None
    skip = {"layers", "seed", "regularizer", "model", "dataset", *STRENGTH_KEYS.values()}
    other = {k: v for k, v in params.items() if k not in skip and not LAMBDA_KEY.match(k)}
    return lams, strength, other


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
    budget, partial = budget_column(), partial_column()
    cols: list[Any] = [
        Experiment.nni_id, Trial.trial_job_id, Trial.sequence_id, Trial.status, Trial.layers,
        Trial.family, Trial.seed, Trial.val_error, Trial.test_error, Trial.best_epoch,
        Trial.end_time, _raw_json(Trial.parameters), _raw_json(Trial.final_metrics),
        budget if budget is not None else literal(None),
        partial if partial is not None else literal(False),
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
     params, metrics, budgets, partials, inters) = columns  # fmt: skip
    exp_index: dict[str, int] = {}
    experiment = [exp_index.setdefault(e, len(exp_index)) for e in nni_ids]
    lam: dict[str, list[float | None]] = {}
    var_end: dict[str, list[float | None]] = {}
    strength: list[float | None] = []
    other: list[str] = []
    for i in range(n):
        lams, strg, oth = effective_strengths(_decoded(params[i]) or {}, families[i])
        for k, v in lams.items():
            col = lam.get(str(k))
            if col is None:
                col = lam[str(k)] = [None] * n
            col[i] = v
        strength.append(strg)
        other.append(" ".join(f"{k}={_text_value(v)}" for k, v in sorted(oth.items())))
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
        partial=[bool(p) or s == "EARLY_STOPPED" for p, s in zip(partials, statuses, strict=True)],
        val_error=list(vals), test_error=list(tests), best_epoch=list(best_epochs),
        end_time=list(ends), lam=lam, strength=strength, other=other, var_end=var_end,
        curves=curve_lists,
    )  # fmt: skip


def compare_groups(session: Session) -> list[CompareGroup]:
    """(model, data set, budget) groups the compare page offers; budget only where stored."""
    budget = budget_column()
    bcol = budget if budget is not None else literal(None)
    q = (
        select(Trial.model, Trial.dataset, bcol, func.count())
        .where(Trial.model.is_not(None), Trial.dataset.is_not(None))
        .group_by(Trial.model, Trial.dataset, bcol)
        .order_by(Trial.model, Trial.dataset, bcol)
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
        _require_model_dataset(session, model, dataset)
        budgets = (parts[2],) if len(parts) == 3 else ()
        if budgets and budget_column() is None:
            raise InvalidValue(f"group={key!r}: budgets are not stored yet; use model/dataset")
        sel = TrialSelection(model=model, dataset=dataset, budgets=budgets)
        pts = trial_points(session, sel, curves=False)
        out.append(CompareSeries(label=key, key=key, points=pts))
    return out


def require_model_dataset(session: Session, model: str, dataset: str) -> None:
    """NotFound naming what is unknown when (model, dataset) has no trial."""
    _require_model_dataset(session, model, dataset)
