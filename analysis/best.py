"""The best of a (model, data set, budget) group: its best configuration, the best λ per layer,
and the layer the variance rule recommends beside the one that gave the lowest error."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson

from analysis.lambda_response import group_lambda_responses, subset_lambda
from storage.db import Session
from storage.errors import NotFound
from storage.queries import (
    BudgetChoice,
    Group,
    best_nsr_trial_per_layer,
    best_trial,
    confirmation_trials,
    count_trials,
    group_stats,
    nsr_single_layer_errors,
    resolve_budget,
    search_trials,
    vanilla_variance_per_layer,
)
from storage.schemas import WINNERS_CURSE, BestConfig, BestLambdas, LayerRecommendation


def winners_curse(group: Group) -> str:
    """The caveat of an answer from search trials only."""
    return WINNERS_CURSE.format(model=group.model, dataset=group.dataset)


def answer_fields(group: Group, choice: BudgetChoice) -> dict[str, Any]:
    """The fields of a :class:`~storage.schemas.GroupAnswer`: the group, the budget answered for
    and every budget stored for it."""
    return {
        "model": group.model,
        "dataset": group.dataset,
        "budget": choice.budget,
        "budgets": choice.budgets,
    }


def best_config(session: Session, group: Group) -> BestConfig:
    """The search trial with the lowest validation error (NNI's "default", never the test error)
    in the group, and that configuration's confirmation runs when there are any."""
    choice = resolve_budget(session, group)
    budget = choice.budget
    trials = search_trials(group, budget)
    best = best_trial(session, trials)
    if best is None:
        raise NotFound(
            f"no full-budget search trial of {group.model}/{group.dataset} [{budget}] has a "
            "validation error yet (include_partial=true ranks early-stopped ones)"
        )
    confirmation = group_stats(
        session, replace(confirmation_trials(group, budget), config_key=best.config_key)
    )
    return BestConfig(
        **answer_fields(group, choice),
        trial=best.trial,
        n_trials=count_trials(session, trials),
        confirmed=confirmation is not None,
        confirmation=confirmation,
        caveat=None if confirmation else winners_curse(group),
    )


LAMBDA_CAVEAT = (
    "layers[].lam is the best single search trial on its layer (one seed, biased low); "
    "subsets[].recommended is fitted on every full-budget search trial of the subset; compare "
    "gives the confirmed verdict"
)


def best_lambda_per_layer(session: Session, group: Group, *, fits: bool = False) -> BestLambdas:
    """For each layer, the λ of the best single-layer NSR search trial on it; with ``fits``, per
    NSR layer subset also the fitted λ-response's recommendation (``analysis.lambda_response``:
    a Gaussian-process fit, seconds on large groups; the service takes it from the cached
    λ-response instead, see :func:`with_fits`)."""
    choice = resolve_budget(session, group)
    layers = best_nsr_trial_per_layer(session, search_trials(group, choice.budget))
    subsets = [subset_lambda(r) for r in group_lambda_responses(session, group)] if fits else []
    return BestLambdas(
        **answer_fields(group, choice), layers=layers, subsets=subsets, caveat=LAMBDA_CAVEAT
    )


def with_fits(best_lambdas: bytes, lambda_responses: bytes) -> bytes:
    """``best-lambda``'s JSON: the single-trial answer (``best_lambda_per_layer``'s JSON) with
    the subsets of the λ-response's (``group_lambda_responses_json``), so the service fits each
    group once per data version for both routes."""
    answer = BestLambdas.model_validate_json(best_lambdas)
    fits = [subset_lambda(r) for r in orjson.loads(lambda_responses)["responses"]]
    return answer.model_copy(update={"subsets": fits}).model_dump_json().encode()


def layer_recommendation(session: Session, group: Group) -> LayerRecommendation:
    """Layers by intra-class variance of the vanilla trials (the paper's RQ4 rule picks the
    largest), and beside it the single-layer config that actually gave the lowest error."""
    choice = resolve_budget(session, group)
    trials = search_trials(group, choice.budget)
    variance = vanilla_variance_per_layer(session, trials)
    variance.sort(key=lambda r: (-r.mean_var, r.layer))
    empirical = nsr_single_layer_errors(session, trials)
    empirical.sort(key=lambda r: (r.best_val_error, r.layer))
    rec = variance[0].layer if variance else None
    emp = empirical[0].layer if empirical else None
    return LayerRecommendation(
        **answer_fields(group, choice),
        variance_ranking=variance,
        recommended_layer=rec,
        empirical_ranking=empirical,
        empirical_best_layer=emp,
        agree=(rec == emp) if rec is not None and emp is not None else None,
    )
