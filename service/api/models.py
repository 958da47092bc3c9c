from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Path, Response
from sqlalchemy.orm import Session

from service.api.params import ImportanceMethod, TrialSelectionDep
from service.deps import CacheDep, SessionDep
from storage import importance, queries
from storage.schemas import (
    BestConfig,
    BestLambdas,
    Comparison,
    Importance,
    LayerRecommendation,
    ModelDataset,
)

router = APIRouter(prefix="/models", tags=["models"])

ModelP = Annotated[str, Path(max_length=64, description="model, e.g. mlp4")]
DatasetP = Annotated[str, Path(max_length=64, description="data set, e.g. digits")]


@router.get("", response_model=list[ModelDataset])
def list_models(session: SessionDep) -> list[ModelDataset]:
    return queries.list_models(session)


# These routes return cached JSON bytes (service.cache); response_model documents the shape.


@router.get("/{model}/{dataset}/best-config", response_model=BestConfig)
async def best_config(cache: CacheDep, model: ModelP, dataset: DatasetP) -> Response:
    """The trial with the lowest validation error, with its test error and all parameters."""
    return await cache.json(
        ("best-config", model, dataset), lambda s: queries.best_config(s, model, dataset)
    )


@router.get("/{model}/{dataset}/best-lambda", response_model=BestLambdas)
async def best_lambda(cache: CacheDep, model: ModelP, dataset: DatasetP) -> Response:
    """Per layer, the λ of the best single-layer NSR trial on it."""
    return await cache.json(
        ("best-lambda", model, dataset), lambda s: queries.best_lambda_per_layer(s, model, dataset)
    )


@router.get("/{model}/{dataset}/recommendation", response_model=LayerRecommendation)
async def recommendation(cache: CacheDep, model: ModelP, dataset: DatasetP) -> Response:
    """Layers ranked by intra-class variance (vanilla trials) and by achieved error."""
    return await cache.json(
        ("recommendation", model, dataset),
        lambda s: queries.layer_recommendation(s, model, dataset),
    )


@router.get("/{model}/{dataset}/compare", response_model=Comparison)
async def compare(cache: CacheDep, model: ModelP, dataset: DatasetP) -> Response:
    """Vanilla vs the best NSR configuration, mean ± std over seeds."""
    return await cache.json(
        ("compare", model, dataset), lambda s: queries.compare(s, model, dataset)
    )


# ---------------------------------------------------------------- results UI (issue 14)


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

    def compute(s: Session) -> Importance:
        queries.require_model_dataset(s, model, dataset)
        return importance.importance(s, sel, method)

    return await cache.json(("importance", sel, method), compute)
