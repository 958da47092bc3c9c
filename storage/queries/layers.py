"""Per-layer rows of a trial set: the best single-layer NSR trial on each layer, the vanilla
trials' intra-class variance per layer, single-layer NSR errors and λ."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Experiment, Trial, TrialLayer
from storage.queries.groups import TrialSet, trial_set_conditions
from storage.schemas import LayerError, LayerLambda, LayerVariance


def best_nsr_trial_per_layer(session: Session, trials: TrialSet) -> list[LayerLambda]:
    """For each layer, the single-layer NSR trial on it with the lowest validation error (a
    window function per ``layers`` value), its λ and the number of such trials; by layer."""
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
        .where(*trial_set_conditions(trials), Trial.family == "nsr", Trial.n_layers == 1)
        .subquery()
    )
    best = session.execute(
        select(ranked.c.id, ranked.c.layers, ranked.c.n).where(ranked.c.rn == 1)
    ).all()
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
    return out


def vanilla_variance_per_layer(session: Session, trials: TrialSet) -> list[LayerVariance]:
    """Mean intra-class variance (end and start of training) per layer over the vanilla trials
    among ``trials`` that reported one."""
    q = (
        select(
            TrialLayer.layer,
            func.avg(TrialLayer.var_end),
            func.avg(TrialLayer.var_init),
            func.count(TrialLayer.var_end),
        )
        .join(Trial, TrialLayer.trial_id == Trial.id)
        .where(
            *trial_set_conditions(trials),
            Trial.family == "vanilla",
            TrialLayer.var_end.is_not(None),
        )
        .group_by(TrialLayer.layer)
    )
    return [
        LayerVariance(layer=k, mean_var=float(v), mean_var_init=vi, n_trials=n)
        for k, v, vi, n in session.execute(q)
    ]


def nsr_single_layer_errors(session: Session, trials: TrialSet) -> list[LayerError]:
    """Best and mean validation error of the single-layer NSR trials, per layer."""
    q = (
        select(Trial.layers, func.min(Trial.val_error), func.avg(Trial.val_error), func.count())
        .where(*trial_set_conditions(trials), Trial.family == "nsr", Trial.n_layers == 1)
        .group_by(Trial.layers)
    )
    return [
        LayerError(layer=int(k), best_val_error=b, mean_val_error=float(m), n_trials=n)
        for k, b, m, n in session.execute(q)
    ]


def nsr_single_layer_lambdas(session: Session, trials: TrialSet, layer: int) -> list[float]:
    """The λ of the NSR trials that regularized only ``layer``, best validation error first."""
    lams = session.scalars(
        select(TrialLayer.lam)
        .join(Trial, TrialLayer.trial_id == Trial.id)
        .where(
            *trial_set_conditions(trials),
            Trial.family == "nsr",
            Trial.layers == str(layer),
            TrialLayer.layer == layer,
        )
        .order_by(Trial.val_error, Trial.id)
    ).all()
    return [x for x in lams if x is not None]
