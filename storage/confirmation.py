"""Confirmation runs: re-run the best configurations of a search, and vanilla, over fresh seeds.

A random search picks its winner *because* it scored best on one seed, so that score is biased
low (the winner's curse). The plan built here is an ordinary NNI experiment that trains, for each
of the top-k configurations of a (model, data set, budget) and for vanilla, ``n`` seeds that no
stored trial of that (model, data set) used. It uses NNI's Batch tuner: its search space is one
``choice`` over complete parameter sets, so every (configuration × seed) runs exactly once.

The experiment's NNI name, ``nsr-confirm <model>/<dataset> of <search ids>``, is how storage
recognises it when it syncs (``storage.parse.confirmed_searches``): its trials are stored with the
role "confirmation", linked to the searches they confirm, and the verdict (``queries.compare``)
uses them instead of the search's own trials.
"""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.errors import InvalidValue, NotFound
from storage.models import Experiment, Trial
from storage.parse import confirmation_name, effective_parameters
from storage.queries import Group, _md, _resolve, _search_trials
from storage.schemas import ConfirmationPlan, PlannedConfiguration
from trials import contract

FIRST_FRESH_SEED = 1000  # far from the small seeds searches use, so "fresh" is easy to see
MAX_TOP_K = 20
MAX_SEEDS = 50
# NNI's training-service record repeats experiment-level fields; the new experiment sets its own.
_EXPERIMENT_LEVEL = {"trialCommand", "trialCodeDirectory", "debug"}


def _without_seed(params: dict[str, Any]) -> dict[str, Any]:
    """The parameter set without its seed and without the λ of layers it does not regularize
    (they changed nothing; leaving them out keeps the plan readable)."""
    flat = contract.flatten_nested(params, strict=False)
    active: set[int] | None = None
    if contract.LAYERS in flat:
        try:
            active = set(contract.parse_layers(flat[contract.LAYERS]))
        except contract.ContractError:
            active = None
    return {
        k: v
        for k, v in flat.items()
        if k != contract.SEED
        and not (
            active is not None
            and (m := contract.LAMBDA_KEY.match(k)) is not None
            and int(m.group(1)) not in active
        )
    }


def _vanilla_of(params: dict[str, Any]) -> dict[str, Any]:
    """The same parameters with nothing regularized."""
    out = {
        k: v
        for k, v in params.items()
        if not contract.LAMBDA_KEY.match(k) and k not in contract.STRENGTH_KEYS.values()
    }
    out[contract.LAYERS] = contract.VANILLA_LAYERS
    if contract.REGULARIZER in params:
        out[contract.REGULARIZER] = contract.NO_REGULARIZER
    return out


def fresh_seeds(session: Session, model: str, dataset: str, n: int) -> list[int]:
    """``n`` seeds from FIRST_FRESH_SEED up that no stored trial of (model, dataset) used."""
    used = set(session.scalars(select(Trial.seed).where(_md(model, dataset)).distinct()).all())
    seeds: list[int] = []
    seed = FIRST_FRESH_SEED
    while len(seeds) < n:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


def _best_trials(session: Session, conds: list[Any]) -> list[tuple[str, str, str, Any, float]]:
    """Per configuration: (config_key, family, layers, best trial id, best val error), best
    configuration first."""
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
        .where(*conds)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.config_key, ranked.c.family, ranked.c.layers, ranked.c.id,
               ranked.c.val_error)
        .where(ranked.c.rn == 1)
        .order_by(ranked.c.val_error, ranked.c.config_key)
    ).all()  # fmt: skip
    return [tuple(r) for r in rows]  # type: ignore[misc]


def confirmation_plan(
    session: Session,
    group: Group,
    top_k: int = 3,
    n_seeds: int = 5,
    concurrency: int = 2,
    per_family: bool = False,
) -> ConfirmationPlan:
    """The NNI experiment that confirms the top ``top_k`` configurations of the group and
    vanilla over ``n_seeds`` fresh seeds; ``per_family``: the best ``top_k`` of each regularizer
    family instead (NSR and every baseline, as in the paper's Table 4)."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidValue(f"top_k={top_k} is out of range: allowed 1..{MAX_TOP_K}")
    if not 2 <= n_seeds <= MAX_SEEDS:
        raise InvalidValue(
            f"seeds={n_seeds} is out of range: allowed 2..{MAX_SEEDS} (a spread needs two)"
        )
    if not 1 <= concurrency <= 64:
        raise InvalidValue(f"concurrency={concurrency} is out of range: allowed 1..64")
    budget, _ = _resolve(session, group)
    group = Group(group.model, group.dataset, budget, include_partial=False)
    ranked = _best_trials(session, _search_trials(group, budget))
    regularized = [r for r in ranked if r[1] not in ("vanilla", "unknown")]
    if per_family:
        kept: dict[str, int] = {}
        candidates = []
        for r in regularized:  # best first: the first top_k of each family
            if kept.get(r[1], 0) < top_k:
                kept[r[1]] = kept.get(r[1], 0) + 1
                candidates.append(r)
    else:
        candidates = regularized[:top_k]
    if not candidates:
        raise NotFound(
            f"{group.model}/{group.dataset} [{budget}] has no regularized full-budget search "
            "trial to confirm"
        )
    vanilla = next((r for r in ranked if r[1] == "vanilla"), None)
    trial_ids = [r[3] for r in candidates] + ([vanilla[3]] if vanilla else [])
    trials = {
        t.id: t for t in session.scalars(select(Trial).where(Trial.id.in_(trial_ids))).all()
    }
    configs: list[PlannedConfiguration] = []
    for key, family, layers, tid, val in candidates:
        params = _without_seed(trials[tid].parameters or {})
        configs.append(
            PlannedConfiguration(
                config_key=key, family=family, layers=layers, parameters=params,
                search_val_error=val,
                configuration=effective_parameters(trials[tid].config or params),
            )  # fmt: skip
        )
    if vanilla is not None:
        params = _without_seed(trials[vanilla[3]].parameters or {})
        v_config = trials[vanilla[3]].config or params
        configs.append(
            PlannedConfiguration(
                config_key=vanilla[0], family="vanilla", layers=vanilla[2], parameters=params,
                search_val_error=vanilla[4], configuration=effective_parameters(v_config),
            )  # fmt: skip
        )
    else:  # the search had no vanilla choice: the best configuration with nothing regularized
        params = _vanilla_of(configs[0].parameters)
        configs.append(
            PlannedConfiguration(
                config_key=None, family="vanilla", layers=contract.VANILLA_LAYERS,
                parameters=params, search_val_error=None, configuration=params,
            )  # fmt: skip
        )
    source = session.scalar(
        select(Experiment).join(Trial, Trial.experiment_id == Experiment.id).where(
            Trial.id == candidates[0][3]
        )
    )
    if source is None or not isinstance(source.config, dict) or not source.trial_command:
        raise NotFound(
            f"the search experiment of {group.model}/{group.dataset} [{budget}] has no stored "
            "NNI configuration (trial command) to re-run"
        )
    searches = sorted(
        {
            nni_id
            for (nni_id,) in session.execute(
                select(Experiment.nni_id)
                .join(Trial, Trial.experiment_id == Experiment.id)
                .where(Trial.id.in_(trial_ids))
            )
        }
    )
    seeds = fresh_seeds(session, group.model, group.dataset, n_seeds)
    # Seed-major order: a run cut short still has every configuration on the same seeds.
    sets = [{**c.parameters, contract.SEED: s} for s in seeds for c in configs]
    experiment = _experiment_config(source, confirmation_name(group.model, group.dataset,
                                                              searches), sets, concurrency)
    return ConfirmationPlan(
        model=group.model,
        dataset=group.dataset,
        budget=budget,
        searches=searches,
        configurations=configs,
        seeds=seeds,
        n_trials=len(sets),
        experiment=experiment,
        yaml=yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True),
    )


def rerun_config(source: Experiment, name: str, search_space: dict[str, Any]) -> dict[str, Any]:
    """A new NNI experiment that runs ``search_space`` the way ``source`` ran its trials: the same
    command, code directory, training service and GPUs. The caller adds tuner and trial counts."""
    stored: dict[str, Any] = source.config or {}
    service = stored.get("trainingService") or {"platform": "local"}
    if isinstance(service, dict):
        service = {k: v for k, v in service.items() if k not in _EXPERIMENT_LEVEL}
    config: dict[str, Any] = {
        "experimentName": name,
        "searchSpace": search_space,
        "trialCommand": source.trial_command,
        "trialCodeDirectory": stored.get("trialCodeDirectory", "."),
        "trainingService": service,
    }
    if stored.get("trialGpuNumber") is not None:
        config["trialGpuNumber"] = stored["trialGpuNumber"]
    return config


def _experiment_config(
    source: Experiment, name: str, sets: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    config = rerun_config(source, name, {"combine_params": {"_type": "choice", "_value": sets}})
    config.update(trialConcurrency=concurrency, maxTrialNumber=len(sets), tuner={"name": "Batch"})
    return config
