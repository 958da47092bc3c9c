from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.deps import SessionDep
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


@router.get("/{model}/{dataset}/best-config", response_model=BestConfig)
def best_config(session: SessionDep, model: ModelP, dataset: DatasetP) -> BestConfig:
    """The trial with the lowest validation error, with its test error and all parameters."""
    return queries.best_config(session, model, dataset)


@router.get("/{model}/{dataset}/best-lambda", response_model=BestLambdas)
def best_lambda(session: SessionDep, model: ModelP, dataset: DatasetP) -> BestLambdas:
    """Per layer, the λ of the best single-layer NSR trial on it."""
    return queries.best_lambda_per_layer(session, model, dataset)


@router.get("/{model}/{dataset}/recommendation", response_model=LayerRecommendation)
def recommendation(session: SessionDep, model: ModelP, dataset: DatasetP) -> LayerRecommendation:
    """Layers ranked by intra-class variance (vanilla trials) and by achieved error."""
    return queries.layer_recommendation(session, model, dataset)


@router.get("/{model}/{dataset}/compare", response_model=Comparison)
def compare(session: SessionDep, model: ModelP, dataset: DatasetP) -> Comparison:
    """Vanilla vs the best NSR configuration, mean ± std over seeds."""
    return queries.compare(session, model, dataset)
