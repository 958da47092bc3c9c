"""Confirmation runs: re-run the best configurations of a search, and vanilla, over fresh seeds.

A random search picks its winner *because* it scored best on one seed, so that score is biased
low (the winner's curse). The plan built here is an ordinary NNI experiment that trains, for each
of the top-k configurations of a (model, data set, budget) and for vanilla, ``n`` seeds that no
stored trial of that (model, data set) used. It uses NNI's Batch tuner: its search space is one
``choice`` over complete parameter sets, so every (configuration × seed) runs exactly once.

The experiment's NNI name, ``nsr-confirm <model>/<dataset> of <search ids>``, is how storage
recognises it when it syncs (``storage.schemas.confirmed_searches``): its trials are stored with
the role "confirmation", linked to the searches they confirm, and the verdict
(``analysis.verdict.compare``) uses them instead of the search's own trials.
"""

from __future__ import annotations

from typing import Any

import yaml

from storage.db import Session
from storage.errors import InvalidValue, NotFound
from storage.queries import (
    ExperimentRun,
    Group,
    best_trial_per_config,
    get_experiment_run,
    list_seeds,
    list_trial_configs,
    resolve_budget,
    search_trials,
)
from storage.schemas import ConfirmationPlan, PlannedConfiguration, confirmation_name
from trials import contract

FIRST_FRESH_SEED = 1000  # far from the small seeds searches use, so "fresh" is easy to see
MAX_TOP_K = 20
MAX_SEEDS = 50
# NNI's training-service record repeats experiment-level fields; the new experiment sets its own.
_EXPERIMENT_LEVEL = {"trialCommand", "trialCodeDirectory", "debug"}


def _without_seed(params: dict[str, Any]) -> dict[str, Any]:
    """The parameter set without its seed and without what took no effect (the λ of layers it
    does not regularize, other families' strengths and knobs): leaving them out keeps the plan
    readable."""
    return contract.config_identity(contract.flatten_nested(params, strict=False))


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
    used = list_seeds(session, model, dataset)
    seeds: list[int] = []
    seed = FIRST_FRESH_SEED
    while len(seeds) < n:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


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
    budget = resolve_budget(session, group).budget
    group = Group(group.model, group.dataset, budget, include_partial=False)
    ranked = best_trial_per_config(session, search_trials(group, budget))
    regularized = [r for r in ranked if r.family not in ("vanilla", "unknown")]
    if per_family:
        kept: dict[str, int] = {}
        candidates = []
        for r in regularized:  # best first: the first top_k of each family
            if kept.get(r.family, 0) < top_k:
                kept[r.family] = kept.get(r.family, 0) + 1
                candidates.append(r)
    else:
        candidates = regularized[:top_k]
    if not candidates:
        raise NotFound(
            f"{group.model}/{group.dataset} [{budget}] has no regularized full-budget search "
            "trial to confirm"
        )
    vanilla = next((r for r in ranked if r.family == "vanilla"), None)
    trial_ids = [r.trial_id for r in candidates] + ([vanilla.trial_id] if vanilla else [])
    trials = list_trial_configs(session, trial_ids)
    configs: list[PlannedConfiguration] = []
    for r in candidates:
        params = _without_seed(trials[r.trial_id].parameters)
        configs.append(
            PlannedConfiguration(
                config_key=r.config_key, family=r.family, layers=r.layers, parameters=params,
                search_val_error=r.val_error,
                configuration=contract.config_identity(trials[r.trial_id].config or params),
            )  # fmt: skip
        )
    if vanilla is not None:
        params = _without_seed(trials[vanilla.trial_id].parameters)
        v_config = trials[vanilla.trial_id].config or params
        configs.append(
            PlannedConfiguration(
                config_key=vanilla.config_key, family="vanilla", layers=vanilla.layers,
                parameters=params, search_val_error=vanilla.val_error,
                configuration=contract.config_identity(v_config),
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
    source = get_experiment_run(session, trials[candidates[0].trial_id].experiment)
    if source is None or not isinstance(source.config, dict) or not source.trial_command:
        raise NotFound(
            f"the search experiment of {group.model}/{group.dataset} [{budget}] has no stored "
            "NNI configuration (trial command) to re-run"
        )
    searches = sorted({c.experiment for c in trials.values()})
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


def rerun_config(source: ExperimentRun, name: str, search_space: dict[str, Any]) -> dict[str, Any]:
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
    source: ExperimentRun, name: str, sets: list[dict[str, Any]], concurrency: int
) -> dict[str, Any]:
    config = rerun_config(source, name, {"combine_params": {"_type": "choice", "_value": sets}})
    config.update(trialConcurrency=concurrency, maxTrialNumber=len(sets), tuner={"name": "Batch"})
    return config
