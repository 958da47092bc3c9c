"""Configurations ranked within a trial set: the best trial, mean ± std of one configuration
over its seeds, configurations by mean validation error, and each configuration's best trial."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Experiment, Trial
from storage.queries.groups import TrialSet, trial_set_conditions
from storage.queries.trials import trial_detail
from storage.schemas import GroupStats, TrialDetail
from trials import contract


@dataclass(frozen=True)
class RankedTrial:
    """A trial picked by rank, and the configuration it ran."""

    config_key: str
    trial: TrialDetail


def best_trial(session: Session, trials: TrialSet) -> RankedTrial | None:
    """The trial with the lowest validation error (ties: the first stored)."""
    row = session.execute(
        select(Trial, Experiment.nni_id)
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(*trial_set_conditions(trials))
        .order_by(Trial.val_error, Trial.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return RankedTrial(config_key=row[0].config_key, trial=trial_detail(session, row[0], row[1]))


def _std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def group_stats(session: Session, trials: TrialSet) -> GroupStats | None:
    """Mean ± std over ``trials`` (one configuration over seeds: narrow by ``config_key``), one
    sample per seed."""
    rows = session.execute(
        select(
            Trial.val_error, Trial.test_error, Trial.seed, Trial.config, Trial.parameters,
            Trial.layers, Trial.family, Trial.config_key, Experiment.nni_id,
        )
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(*trial_set_conditions(trials))
        .order_by(Trial.seed, Trial.id)
    ).all()  # fmt: skip
    if not rows:
        return None
    # A (configuration, seed) pair is one sample: replicates of a seed (a fixed-seed search that
    # drew the same configuration twice) count once, as their mean. A trial without a seed is a
    # sample of its own.
    samples: dict[object, list[tuple[float, float | None]]] = {}
    for i, r in enumerate(rows):
        test = r[1] if r[1] is not None and math.isfinite(r[1]) else None
        samples.setdefault(r[2] if r[2] is not None else ("unseeded", i), []).append((r[0], test))
    seeds = [s if isinstance(s, int) else None for s in samples]
    vals = [statistics.fmean(v for v, _ in reps) for reps in samples.values()]
    per_seed_tests = [[t for _, t in reps if t is not None] for reps in samples.values()]
    test_seeds = [s for s, ts in zip(seeds, per_seed_tests, strict=True) if ts]
    tests = [statistics.fmean(ts) for ts in per_seed_tests if ts]
    config = rows[0][3] if rows[0][3] is not None else rows[0][4]
    return GroupStats(
        config_key=rows[0][7],
        family=rows[0][6],
        layers=rows[0][5],
        parameters=contract.config_identity(config or {}),
        n=len(samples),
        n_trials=len(rows),
        seeds=seeds,
        val_error_mean=statistics.fmean(vals),
        val_error_std=_std(vals),
        test_error_mean=statistics.fmean(tests) if tests else None,
        test_error_std=_std(tests),
        test_errors=tests,
        test_error_seeds=test_seeds,
        experiments=sorted({r[8] for r in rows}),
    )


def ranked_configs(session: Session, trials: TrialSet) -> list[str]:
    """Configuration keys by mean validation error (more trials first on ties)."""
    q = (
        select(Trial.config_key, func.avg(Trial.val_error).label("m"), func.count().label("n"))
        .where(*trial_set_conditions(trials))
        .group_by(Trial.config_key)
        .order_by("m", func.count().desc(), Trial.config_key)
    )
    return [r[0] for r in session.execute(q)]


@dataclass(frozen=True)
class ConfigBest:
    """One configuration's best trial: ``trial_id`` names the stored trial for
    ``list_trial_configs``."""

    config_key: str
    family: str
    layers: str
    trial_id: int
    val_error: float


def best_trial_per_config(session: Session, trials: TrialSet) -> list[ConfigBest]:
    """Per configuration, its trial with the lowest validation error; best configuration
    first."""
    ranked = (
        select(
            Trial.config_key,
            Trial.family,
            Trial.layers,
            Trial.id,
            Trial.val_error,
            func.row_number()
            .over(partition_by=Trial.config_key, order_by=(Trial.val_error, Trial.id))
            .label("rn"),
        )
        .where(*trial_set_conditions(trials))
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.config_key, ranked.c.family, ranked.c.layers, ranked.c.id,
               ranked.c.val_error)
        .where(ranked.c.rn == 1)
        .order_by(ranked.c.val_error, ranked.c.config_key)
    ).all()  # fmt: skip
    return [ConfigBest(k, f, layers, tid, v) for k, f, layers, tid, v in rows]


@dataclass(frozen=True)
class TrialConfig:
    """What a stored trial ran: NNI's parameters, its effective configuration (None when
    unknown), where that came from (``config_source``: "report" when the trial reported it, as
    this project's trials do) and its experiment's NNI id."""

    experiment: str
    parameters: dict[str, Any]
    config: dict[str, Any] | None
    config_source: str | None = None


def list_trial_configs(session: Session, trial_ids: list[int]) -> dict[int, TrialConfig]:
    """The parameters and configuration of the stored trials ``trial_ids``, by id."""
    rows = session.execute(
        select(Trial.id, Experiment.nni_id, Trial.parameters, Trial.config, Trial.config_source)
        .join(Experiment, Trial.experiment_id == Experiment.id)
        .where(Trial.id.in_(trial_ids))
    )
    return {
        tid: TrialConfig(nni_id, params or {}, config, source)
        for tid, nni_id, params, config, source in rows
    }
