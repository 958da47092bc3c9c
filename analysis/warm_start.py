"""Warm start: the next search of a (model, data set, budget), narrowed by what is stored.

The rule (documented in ARCHITECTURE.md, "Warm start"):
- ``layers``: ``"none"`` (vanilla stays in the search as its baseline), the layer the variance rule
  recommends and the layer with the lowest validation error among single-layer NSR trials — one
  to three choices instead of every subset.
- ``lambda_<k>`` of each kept layer: loguniform over the λ of the best quarter (at least
  ``MIN_TOP``) of that layer's trials, widened by ``WIDEN``× on each side and clipped to the
  paper's [0.01, 100]; a layer without trials keeps the full range.
- The other search-space keys, the tuner (or advisor) and assessor, the trial count and concurrency
  follow the group's most recent search, each through ``analysis.rerun``'s checks; the command is
  built from the best trial's reported configuration, the code directory and training service are
  this installation's. Nothing of the stored record is run as it was stored.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from analysis import rerun
from analysis.best import layer_recommendation
from storage.db import Session
from storage.errors import NotFound
from storage.queries import (
    Group,
    best_trial_per_config,
    latest_experiment_run,
    list_trial_configs,
    nsr_single_layer_lambdas,
    resolve_budget,
    search_trials,
)
from storage.schemas import WarmStart
from trials import contract

LAMBDA_RANGE = (0.01, 100.0)
WIDEN = 3.0
MIN_TOP = 3
TOP_FRACTION = 0.25


def lambda_range(lams_best_first: list[float]) -> tuple[float, float]:
    """The λ range around the best region (see the module's rule)."""
    lams = [x for x in lams_best_first if x > 0 and math.isfinite(x)]
    if not lams:
        return LAMBDA_RANGE
    top = lams[: max(MIN_TOP, math.ceil(TOP_FRACTION * len(lams)))]
    low = max(LAMBDA_RANGE[0], min(top) / WIDEN)
    high = min(LAMBDA_RANGE[1], max(top) * WIDEN)
    if not low < high:  # one λ at the edge of the range: keep a spread to search
        low, high = max(LAMBDA_RANGE[0], high / WIDEN**2), min(LAMBDA_RANGE[1], low * WIDEN**2)
    return low, high


def warm_start(session: Session, group: Group, settings: rerun.Rerun | None = None) -> WarmStart:
    """The next search (see the module's rule), built by ``analysis.rerun``: this installation's
    command, code and training service, allow-listed algorithms; a foreign search needs the
    user's command (``settings.command``)."""
    settings = settings or rerun.Rerun()
    budget = resolve_budget(session, group).budget
    group = Group(group.model, group.dataset, budget)
    rec = layer_recommendation(session, group)
    layers = [k for k in (rec.recommended_layer, rec.empirical_best_layer) if k is not None]
    layers = sorted(set(layers))
    if not layers:
        raise NotFound(
            f"{group.model}/{group.dataset} [{budget}] has neither vanilla trials with variances "
            "nor single-layer NSR trials: nothing to narrow the search by"
        )
    trials = search_trials(group, budget)
    ranges = {k: lambda_range(nsr_single_layer_lambdas(session, trials, k)) for k in layers}
    source = latest_experiment_run(session, trials)
    if source is None or not isinstance(source.config, dict) or not source.trial_command:
        raise NotFound(
            f"no stored search of {group.model}/{group.dataset} [{budget}] to start from"
        )
    stored: dict[str, Any] = source.config
    ranked = best_trial_per_config(session, trials)
    best = list_trial_configs(session, [ranked[0].trial_id])[ranked[0].trial_id] if ranked else None
    reason = rerun.foreign_reason(stored, source.trial_command)
    if best is None or not rerun.is_ours(best.config_source):
        reason = reason or "its trials did not report their configuration"
    narrowed = {contract.LAYERS: {"_type": "choice",
                                  "_value": [contract.VANILLA_LAYERS, *(str(k) for k in layers)]},
                **{contract.lambda_key(k): {"_type": "loguniform", "_value": list(ranges[k])}
                   for k in layers}}  # fmt: skip
    kept = {
        key: spec
        for key, spec in (stored.get("searchSpace") or {}).items()
        if key != contract.LAYERS and not contract.LAMBDA_KEY.match(key)
    }
    if reason is None:
        entry, params = rerun.checked_params(best.config or {})
        space = {**rerun.search_space(kept, entry), **narrowed}
        flags = {k: v for k, v in params.items() if k not in space and k != contract.SEED
                 and not contract.LAMBDA_KEY.match(k)}  # fmt: skip
        command = rerun.trial_command(entry, flags, settings)
        algorithms = {
            what: rerun.algorithm(stored[what], what, builtins)
            for what, builtins in (("tuner", rerun.BUILTIN_TUNERS),
                                   ("advisor", rerun.BUILTIN_TUNERS),
                                   ("assessor", rerun.BUILTIN_ASSESSORS))
            if stored.get(what) is not None
        }  # fmt: skip
    else:
        command = rerun.user_command(settings, f"search {source.nni_id} ({reason})")
        space = {**rerun.search_space(kept, None), **narrowed}
        algorithms = {}  # a foreign search's algorithms are not re-run: Random
    config = rerun.experiment(
        f"nsr-warm {group.model}/{group.dataset}", space, command, settings,
        concurrency=_bounded(stored.get("trialConcurrency"), 1, 64, 1),
        max_trials=_bounded(stored.get("maxTrialNumber"), 1, 100_000, 20),
        tuner=algorithms.get("tuner"), advisor=algorithms.get("advisor"),
        assessor=algorithms.get("assessor"), duration=stored.get("maxExperimentDuration"),
    )  # fmt: skip
    return WarmStart(
        model=group.model,
        dataset=group.dataset,
        budget=budget,
        source_experiment=source.nni_id,
        layers=layers,
        lambda_ranges={str(k): list(v) for k, v in ranges.items()},
        recommended_layer=rec.recommended_layer,
        empirical_best_layer=rec.empirical_best_layer,
        experiment=config,
        yaml=yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        user_command=settings.command if reason is not None else None,
    )


def _bounded(value: Any, low: int, high: int, default: int) -> int:
    """A stored count, used only when it is a plain integer in range."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return default
