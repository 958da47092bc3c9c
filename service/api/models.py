"""Answers per (model, data set, training budget): best configuration, best λ per layer, the layer
rule, the verdict of vanilla vs NSR, confirmation runs and the warm-started next search."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from analysis import best, importance, verdict
from analysis.confirmation import MAX_SEEDS, MAX_TOP_K, confirmation_plan
from analysis.lambda_response import group_lambda_responses_json
from analysis.warm_start import warm_start
from service.api.params import (
    DatasetP,
    GroupDep,
    ImportanceMethod,
    ModelP,
    RerunDep,
    TrialSelectionDep,
)
from service.cache import JsonBytes, ResponseCache
from service.deps import (
    WRITE_RESPONSES,
    BearerDep,
    CacheDep,
    DbDep,
    SessionDep,
    SettingsDep,
    WriteAccess,
    require_start_token,
)
from service.nni_launcher import start_confirmation
from storage import queries
from storage.schemas import (
    BestConfig,
    BestLambdas,
    Comparison,
    ConfirmationStarted,
    Importance,
    LayerRecommendation,
    ModelDataset,
    WarmStart,
)

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=list[ModelDataset])
def list_models(session: SessionDep) -> list[ModelDataset]:
    return queries.list_models(session)


# These routes return cached JSON bytes (service.cache); response_model documents the shape.


@router.get("/{model}/{dataset}/best-config", response_model=BestConfig)
async def best_config(cache: CacheDep, group: GroupDep) -> Response:
    """The search trial with the lowest validation error in one budget, and its configuration's
    confirmation runs (or the winner's-curse caveat when there are none)."""
    return await cache.json(("best-config", group), lambda s: best.best_config(s, group))


@router.get("/{model}/{dataset}/best-lambda", response_model=BestLambdas)
async def best_lambda(cache: CacheDep, group: GroupDep) -> Response:
    """Per layer, the λ of the best single-layer NSR search trial on it; per NSR layer subset
    (one or two layers), the λ-response fit's recommended λ, near-optimal range, trials and
    noise sd (null, with the reason, below the minimum of trials)."""
    single = await _best_single(cache, group)  # cheap, first: an unknown group is a 404 here
    # The same heavy cache entry as …/lambda-response: one fit per data version for both.
    fits = await _lambda_responses(cache, group)
    return Response(best.with_fits(single, fits), media_type="application/json")


async def _best_single(cache: ResponseCache, group: queries.Group) -> bytes:
    return await cache.bytes(
        ("best-lambda", group), JsonBytes(partial(best.best_lambda_per_layer, group=group))
    )


@router.get("/{model}/{dataset}/lambda-response")
async def lambda_response(cache: CacheDep, group: GroupDep) -> Response:
    """Per NSR layer subset (one or two layers), validation error fitted on log10 λ (a Gaussian
    process with a noise term): the recommended λ, the near-optimal range, the noise and the
    fitted curve with its band (a grid for two layers); below the minimum of trials, why not."""
    # A cheap answer first: an unknown group is a 404 without queueing a heavy fit (a flood of
    # made-up groups filled the heavy lane with 503s).
    await _best_single(cache, group)
    return Response(await _lambda_responses(cache, group), media_type="application/json")


async def _lambda_responses(cache: ResponseCache, group: queries.Group) -> bytes:
    # A picklable partial of a module-level function: heavy answers run in a worker process.
    # The fit ignores include_partial (full-budget trials only): one entry for both values.
    group = replace(group, include_partial=False)
    compute = partial(group_lambda_responses_json, group=group)
    return await cache.bytes(("lambda-response", group), compute, heavy=True)


@router.get("/{model}/{dataset}/recommendation", response_model=LayerRecommendation)
async def recommendation(cache: CacheDep, group: GroupDep) -> Response:
    """Layers ranked by intra-class variance (vanilla trials) and by achieved error."""
    return await cache.json(
        ("recommendation", group), lambda s: best.layer_recommendation(s, group)
    )


@router.get("/{model}/{dataset}/compare", response_model=Comparison)
async def compare(
    cache: CacheDep,
    group: GroupDep,
    min_gain: Annotated[
        float | None,
        Query(gt=0, le=100, description="a gain (test error points) to size the seeds for, at "
              "80 % power: each row's seeds_needed_min_gain"),
    ] = None,
) -> Response:
    """Vanilla vs every compared configuration: from confirmation runs over fresh seeds when they
    exist (one sample per seed: mean ± std, 95 % bootstrap CI of the difference, Welch and paired
    p-values, the seeds needed for 80 % power), else the search's best per family, marked
    unconfirmed; ``summary`` says it in one sentence."""
    return await cache.json(
        ("compare", group, min_gain), lambda s: verdict.compare(s, group, min_gain)
    )


@router.get("/{model}/{dataset}/search-space", response_model=WarmStart)
def search_space(
    session: SessionDep,
    group: GroupDep,
    rerun: RerunDep,
    format: Annotated[str, Query(pattern="^(json|yaml)$", description="json or yaml")] = "json",
) -> WarmStart | Response:
    """The next search, narrowed by what is stored (layers: vanilla, the recommended and the
    empirically best; λ around the best region): an NNI experiment config for nnictl create."""
    answer = warm_start(session, group, rerun)
    if format == "yaml":
        return Response(answer.yaml, media_type="application/yaml")
    return answer


@router.post(
    "/{model}/{dataset}/confirm",
    response_model=ConfirmationStarted,
    dependencies=[WriteAccess],
    responses={
        **WRITE_RESPONSES,
        403: {"description": "start=true on a service without NSR_API_TOKEN"},
        502: {"description": "nnictl could not start the experiment"},
    },
)
async def confirm(
    db: DbDep,
    settings: SettingsDep,
    credentials: BearerDep,
    group: GroupDep,
    rerun: RerunDep,
    top_k: Annotated[int, Query(ge=1, le=MAX_TOP_K, description="configurations to confirm")] = 3,
    seeds: Annotated[int, Query(ge=2, le=MAX_SEEDS, description="fresh seeds per config")] = 5,
    concurrency: Annotated[int, Query(ge=1, le=64, description="NNI trialConcurrency")] = 2,
    start: Annotated[bool, Query(description="start it with nnictl (else only the plan)")] = False,
    per_family: Annotated[
        bool, Query(description="the best top_k of each regularizer family (Table 4)")
    ] = False,
    extend: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
              description="a confirmation experiment's id: run its configurations over `seeds` "
              "more fresh seeds (top_k and per_family do not apply); compare pools them and "
              "adjusts p for the looks"),
    ] = None,
) -> ConfirmationStarted:
    """Plan (and with start=true, start under NNI) the experiment that re-runs the top-k
    configurations of the group and vanilla over fresh seeds."""
    if start:
        require_start_token(settings, credentials)

    def plan_it() -> ConfirmationStarted:
        with db.session_scope() as s:
            plan = confirmation_plan(
                s, group, top_k, seeds, concurrency, per_family, rerun, extend=extend
            )
        if not start:
            return ConfirmationStarted(
                plan=plan, started=False, nni_id=None, nni_url=None, config_path=None
            )
        return start_confirmation(plan, settings)

    return await asyncio.to_thread(plan_it)


# ---------------------------------------------------------------- results UI


@router.get("/{model}/{dataset}/importance", response_model=Importance)
async def model_importance(
    cache: CacheDep,
    model: ModelP,
    dataset: DatasetP,
    where: TrialSelectionDep,
    method: ImportanceMethod = "ped-anova",
) -> Response:
    """Hyperparameter importance over every experiment of (model, data set), filtered like the
    experiment's (``budget`` keeps results comparable)."""
    sel = replace(where, model=model, dataset=dataset)
    compute = partial(_model_importance, sel=sel, method=method)
    return await cache.json(("importance", sel, method), compute, heavy=True)


def _model_importance(session: Session, sel: queries.TrialSelection, method: str) -> Importance:
    # Module level: it runs in a worker process (service.cache), so it must pickle.
    assert sel.model is not None and sel.dataset is not None
    queries.require_model_dataset(session, sel.model, sel.dataset)
    return importance.importance(session, sel, method)  # type: ignore[arg-type]
