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

from analysis import rerun as rerun_rules
from analysis.lambda_response import LambdaResponse, group_lambda_responses, in_range
from storage.db import Session
from storage.errors import InvalidValue, NotFound
from storage.queries import (
    ConfigBest,
    Group,
    TrialConfig,
    TrialSet,
    best_trial_per_config,
    get_experiment,
    get_experiment_run,
    has_trials,
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
    rerun: rerun_rules.Rerun | None = None,
    extend: str | None = None,
) -> ConfirmationPlan:
    """The NNI experiment that confirms the top ``top_k`` configurations of the group and
    vanilla over ``n_seeds`` fresh seeds; ``per_family``: the best ``top_k`` of each regularizer
    family instead (NSR and every baseline, as in the paper's Table 4); ``extend``: the same
    configurations as that confirmation experiment, over ``n_seeds`` more fresh seeds (the
    verdict pools them, its p adjusted for the looks). The experiment is built by
    ``analysis.rerun`` (this installation's command, code and training service), never copied
    from the stored search."""
    rerun = rerun or rerun_rules.Rerun()
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
    source = search_trials(group, budget) if extend is None else _extended(session, group, extend)
    ranked = best_trial_per_config(session, source)
    if rerun.command is None:
        # Without the user's command only this project's trials can be re-run: a trial whose
        # configuration did not come from its own report is passed over (its record is kept).
        ranked, trials = _reported(session, ranked)
    else:
        trials = list_trial_configs(session, [r.trial_id for r in ranked[: 4 * MAX_TOP_K]])
        ranked = [r for r in ranked if r.trial_id in trials]
    regularized = [r for r in ranked if r.family not in ("vanilla", "unknown")]
    fitted: dict[int, dict[int, float]] = {}
    if extend is not None:  # every configuration it ran, whatever top_k says
        top_k, per_family = len(regularized), False
    else:
        regularized, fitted = _one_per_region(regularized, trials, _fits(session, group))
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
            "trial to confirm" + ("" if rerun.command else " that reported its configuration")
        )
    vanilla = next((r for r in ranked if r.family == "vanilla"), None)
    chosen = candidates + ([vanilla] if vanilla else [])
    searches = sorted({c.experiment for c in trials.values()})
    if extend is not None:  # the extension confirms what the extended run confirmed
        searches = get_experiment(session, extend).confirms or searches
    foreign = _foreign(session, searches, [trials[r.trial_id] for r in chosen])
    if foreign is not None and rerun.command is None:
        raise rerun_rules.PlanRefused(
            f"{group.model}/{group.dataset} [{budget}]: search {foreign[0]} cannot be confirmed: "
            f"{foreign[1]}; a stored command is never run: name the command to run (command=...)"
        )
    configs = [
        _planned(r, trials[r.trial_id], foreign is None, fitted.get(r.trial_id)) for r in chosen
    ]
    if vanilla is None:  # the search had no vanilla choice: the best one, nothing regularized
        params = _vanilla_of(configs[0].parameters)
        if foreign is None:
            entry, checked = rerun_rules.checked_params(params)
            params = {contract.ENTRY: entry, **checked}
        configs.append(
            PlannedConfiguration(
                config_key=None, family="vanilla", layers=contract.VANILLA_LAYERS,
                parameters=params, search_val_error=None, configuration=params,
            )  # fmt: skip
        )
    seeds = fresh_seeds(session, group.model, group.dataset, n_seeds)
    # Seed-major order: a run cut short still has every configuration on the same seeds.
    sets = [{**c.parameters, contract.SEED: s} for s in seeds for c in configs]
    if foreign is None:
        entries = {p.pop(contract.ENTRY) for p in sets}
        if len(entries) != 1:
            raise rerun_rules.PlanRefused(f"the configurations run different entries: {entries}")
        flags, sets = rerun_rules.split_common(sets)
        command = rerun_rules.trial_command(entries.pop(), flags, rerun)
    else:
        command = rerun_rules.user_command(rerun, f"search {foreign[0]}")
    name = confirmation_name(group.model, group.dataset, searches)
    space = {"combine_params": {"_type": "choice", "_value": sets}}
    experiment = rerun_rules.experiment(name, space, command, rerun, concurrency=concurrency,
                                        max_trials=len(sets), tuner={"name": "Batch"})  # fmt: skip
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
        user_command=rerun.command if foreign is not None else None,
    )


def _extended(session: Session, group: Group, nni_id: str) -> TrialSet:
    """The trials of confirmation experiment ``nni_id`` in ``group`` (its configurations are the
    ones an extension runs again)."""
    exp = get_experiment(session, nni_id)  # NotFound names an unknown id
    if exp.role != "confirmation":
        raise InvalidValue(
            f"extend={nni_id!r} is a {exp.role} experiment: only a confirmation run can be "
            "extended (its configurations get more fresh seeds)"
        )
    trials = TrialSet(group, group.budget or "", "confirmation", experiment=nni_id)
    if not has_trials(session, trials):
        raise InvalidValue(
            f"extend={nni_id!r} has no finished trial of {group.model}/{group.dataset} "
            f"[{group.budget}]: extend a confirmation of this model, data set and budget"
        )
    return trials


def _reported(
    session: Session, ranked: list[ConfigBest]
) -> tuple[list[ConfigBest], dict[int, TrialConfig]]:
    """The ranked configurations whose best trial reported its configuration, best first, with
    those trials' records; read a batch at a time, enough for the largest plan."""
    kept: list[ConfigBest] = []
    trials: dict[int, TrialConfig] = {}
    families: dict[str, int] = {}
    batch = 4 * MAX_TOP_K
    for start in range(0, len(ranked), batch):
        chunk = ranked[start : start + batch]
        found = list_trial_configs(session, [r.trial_id for r in chunk])
        for r in chunk:
            t = found[r.trial_id]
            if rerun_rules.is_ours(t.config_source):
                kept.append(r)
                trials[r.trial_id] = t
                families[r.family] = families.get(r.family, 0) + 1
        if "vanilla" in families and all(n >= MAX_TOP_K for f, n in families.items()):
            break
    return kept, trials


def _foreign(
    session: Session, searches: list[str], trials: list[TrialConfig]
) -> tuple[str, str] | None:
    """(experiment, why) for the first search that is not this project's as it ran, else None."""
    for t in trials:
        if not rerun_rules.is_ours(t.config_source):
            return t.experiment, "its trials did not report their configuration"
    for nni_id in searches:
        run = get_experiment_run(session, nni_id)
        reason = rerun_rules.foreign_reason(run.config if run else None,
                                            run.trial_command if run else None)  # fmt: skip
        if reason is not None:
            return nni_id, reason
    return None


def _fits(session: Session, group: Group) -> dict[str, LambdaResponse]:
    """The fitted λ-response of each NSR layer subset that has one, by its layers string."""
    return {
        contract.format_layers(r.layers): r
        for r in group_lambda_responses(session, group)
        if r.fitted
    }


def _lambdas_of(trial: TrialConfig, layers: str) -> dict[int, float]:
    """The λ per regularized layer that ``trial`` trained with."""
    config = trial.config or contract.flatten_nested(trial.parameters, strict=False)
    out: dict[int, float] = {}
    for k in contract.parse_layers(layers) if layers != contract.VANILLA_LAYERS else []:
        value = config.get(contract.lambda_key(k))
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[k] = float(value)
    return out


def _one_per_region(
    ranked: list[ConfigBest], trials: dict[int, TrialConfig], fits: dict[str, LambdaResponse]
) -> tuple[list[ConfigBest], dict[int, dict[int, float]]]:
    """The candidates, best first, with near-duplicates merged: of the NSR configurations of one
    layer subset whose λ lie inside its fitted near-optimal range, the best one stands for the
    range and is run at the fitted recommended λ (returned by trial id); the others are one
    candidate with it and dropped. A configuration outside the range, or of a subset without a
    fit, stays as it is."""
    kept: list[ConfigBest] = []
    fitted: dict[int, dict[int, float]] = {}
    ranges_taken: set[str] = set()
    for r in ranked:
        fit = fits.get(r.layers) if r.family == "nsr" else None
        if fit is not None and in_range(fit, _lambdas_of(trials[r.trial_id], r.layers)):
            if r.layers in ranges_taken:
                continue
            ranges_taken.add(r.layers)
            fitted[r.trial_id] = {k: float(f"{v:.3g}") for k, v in fit.recommended.items()}
        kept.append(r)
    return kept, fitted


def _planned(
    r: ConfigBest, trial: TrialConfig, ours: bool, fitted: dict[int, float] | None = None
) -> PlannedConfiguration:
    """A configuration to confirm: ours rebuilt from its reported configuration (every value
    through the trial's own rules), at the fitted recommended λ where ``fitted`` gives it; a
    foreign one from its parameters, for the user's command."""
    if ours:
        identity = contract.config_identity(trial.config or {})
        if fitted:
            identity |= {contract.lambda_key(k): v for k, v in fitted.items()}
        entry, params = rerun_rules.checked_params(identity)
        params = {contract.ENTRY: entry, **params}
    else:
        params = _without_seed(trial.parameters)
        identity = contract.config_identity(trial.config or params)
    return PlannedConfiguration(
        config_key=r.config_key, family=r.family, layers=r.layers, parameters=params,
        search_val_error=r.val_error, configuration=identity,
        fitted_lambda=fitted if ours and fitted else None,
    )  # fmt: skip
