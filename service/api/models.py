from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from service.deps import CacheDep, SessionDep
from storage import queries
from storage.schemas import (
    BestConfig,
    BestLambdas,
    Comparison,
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
def best_config(session: SessionDep, cache: CacheDep, model: ModelP, dataset: DatasetP) -> Response:
    """The trial with the lowest validation error, with its test error and all parameters."""
    return cache.json(session, ("best-config", model, dataset),
                      lambda: queries.best_config(session, model, dataset))  # fmt: skip


@router.get("/{model}/{dataset}/best-lambda", response_model=BestLambdas)
def best_lambda(session: SessionDep, cache: CacheDep, model: ModelP, dataset: DatasetP) -> Response:
    """Per layer, the λ of the best single-layer NSR trial on it."""
    return cache.json(session, ("best-lambda", model, dataset),
                      lambda: queries.best_lambda_per_layer(session, model, dataset))  # fmt: skip


@router.get("/{model}/{dataset}/recommendation", response_model=LayerRecommendation)
def recommendation(
    session: SessionDep, cache: CacheDep, model: ModelP, dataset: DatasetP
) -> Response:
    """Layers ranked by intra-class variance (vanilla trials) and by achieved error."""
    return cache.json(session, ("recommendation", model, dataset),
                      lambda: queries.layer_recommendation(session, model, dataset))  # fmt: skip


@router.get("/{model}/{dataset}/compare", response_model=Comparison)
def compare(session: SessionDep, cache: CacheDep, model: ModelP, dataset: DatasetP) -> Response:
    """Vanilla vs the best NSR configuration, mean ± std over seeds."""
    return cache.json(session, ("compare", model, dataset),
                      lambda: queries.compare(session, model, dataset))  # fmt: skip
