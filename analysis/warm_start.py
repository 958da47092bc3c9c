"""Warm start: the next search of a (model, data set, budget), narrowed by what is stored.

The rule (documented in ARCHITECTURE.md, "Warm start"):
- ``layers``: ``"none"`` (vanilla stays in the search as its baseline), the layer the variance rule
  recommends and the layer with the lowest validation error among single-layer NSR trials — one
  to three choices instead of every subset.
- ``lambda_<k>`` of each kept layer: loguniform over the λ of the best quarter (at least
  ``MIN_TOP``) of that layer's trials, widened by ``WIDEN``× on each side and clipped to the
  paper's [0.01, 100]; a layer without trials keeps the full range.
- Everything else (trial command, code directory, training service, tuner, trial count, the other
  search-space keys) is copied from the group's most recent search, so the YAML runs as it is.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from analysis.best import layer_recommendation
from analysis.confirmation import rerun_config
from storage.db import Session
from storage.errors import NotFound
from storage.queries import (
    Group,
    latest_experiment_run,
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


def warm_start(session: Session, group: Group) -> WarmStart:
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
    space: dict[str, Any] = {
        key: spec
        for key, spec in (stored.get("searchSpace") or {}).items()
        if key != contract.LAYERS and not contract.LAMBDA_KEY.match(key)
    }
    space[contract.LAYERS] = {
        "_type": "choice",
        "_value": [contract.VANILLA_LAYERS, *(str(k) for k in layers)],
    }
    for k in layers:
        space[contract.lambda_key(k)] = {"_type": "loguniform", "_value": list(ranges[k])}
    config = rerun_config(source, f"nsr-warm {group.model}/{group.dataset}", space)
    config.update(
        trialConcurrency=stored.get("trialConcurrency", 1),
        maxTrialNumber=stored.get("maxTrialNumber", 20),
    )
    if stored.get("advisor"):  # Hyperband/BOHB take the tuner's place
        config["advisor"] = stored["advisor"]
    else:
        config["tuner"] = stored.get("tuner") or {"name": "Random"}
    for key in ("maxExperimentDuration", "assessor"):
        if stored.get(key) is not None:
            config[key] = stored[key]
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
    )
