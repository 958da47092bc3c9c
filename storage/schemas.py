"""What queries return: pydantic models, never ORM rows (they double as the API's schemas)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    total: int = Field(description="rows matching the filters, over all pages")
    limit: int
    offset: int
    items: list[T]


class ExperimentSummary(BaseModel):
    nni_id: str
    name: str | None
    model: str | None
    dataset: str | None
    status: str
    start_time: int | None = Field(description="epoch milliseconds, as NNI stores it")
    end_time: int | None
    source: str | None
    n_trials: int
    n_succeeded: int
    best_val_error: float | None
    sync_error: str | None = Field(
        default=None, description="why the last sync could not update it (None: it could)"
    )


class ExperimentDetail(ExperimentSummary):
    trial_command: str | None
    search_space: dict[str, Any] | None


class LayerRow(BaseModel):
    layer: int
    lam: float | None = Field(description="effective λ: 0 when the layer is not regularized")
    var_init: float | None
    var_end: float | None


class TrialSummary(BaseModel):
    experiment: str = Field(description="NNI experiment id")
    trial_job_id: str
    sequence_id: int | None
    model: str | None
    dataset: str | None
    status: str
    layers: str
    regularizer: str | None
    seed: int | None
    val_error: float | None
    test_error: float | None
    best_epoch: int | None
    epoch_seconds: float | None
    parameters: dict[str, Any]
    start_time: int | None
    end_time: int | None


class TrialDetail(TrialSummary):
    final_metrics: dict[str, float] | None
    final_raw: str | None = Field(description="NNI's text when the final metric broke the contract")
    intermediate: list[float | None]
    layer_rows: list[LayerRow]


class BestConfig(BaseModel):
    model: str
    dataset: str
    trial: TrialDetail
    n_trials: int = Field(description="trials of (model, dataset) with a validation error")


class LayerLambda(BaseModel):
    layer: int
    lam: float | None
    val_error: float
    test_error: float | None
    experiment: str
    trial_job_id: str
    n_trials: int = Field(description="single-layer trials on this layer")


class BestLambdas(BaseModel):
    model: str
    dataset: str
    layers: list[LayerLambda]


class LayerVariance(BaseModel):
    layer: int
    mean_var: float = Field(description="mean intra-class variance at the end, vanilla trials")
    mean_var_init: float | None
    n_trials: int


class LayerError(BaseModel):
    layer: int
    best_val_error: float
    mean_val_error: float
    n_trials: int


class LayerRecommendation(BaseModel):
    model: str
    dataset: str
    variance_ranking: list[LayerVariance] = Field(description="largest variance first")
    recommended_layer: int | None = Field(description="the paper's rule: largest variance")
    empirical_ranking: list[LayerError] = Field(description="lowest validation error first")
    empirical_best_layer: int | None = Field(description="single-layer config with lowest error")
    agree: bool | None


class GroupStats(BaseModel):
    config_key: str
    layers: str
    parameters: dict[str, Any] = Field(description="one trial's parameters, seed excluded")
    n: int
    seeds: list[int | None]
    val_error_mean: float
    val_error_std: float | None = Field(description="sample std; None when n = 1")
    test_error_mean: float | None
    test_error_std: float | None


class Comparison(BaseModel):
    model: str
    dataset: str
    vanilla: GroupStats | None
    nsr: GroupStats | None
    val_error_gain: float | None = Field(
        description="vanilla mean − NSR mean (> 0: NSR better)"
    )
    test_error_gain: float | None


class ModelDataset(BaseModel):
    model: str
    dataset: str
    n_trials: int
    n_experiments: int
    best_val_error: float | None


class SyncReport(BaseModel):
    experiments: int
    skipped: int = Field(description="stopped experiments whose nni.sqlite did not change")
    inserted: int
    updated: int
    unchanged: int
    errors: list[str]
    seconds: float


class SyncErrorItem(BaseModel):
    nni_id: str = Field(description="NNI experiment id, as the registry or the file names it")
    message: str
    at: int = Field(description="epoch milliseconds of the failed attempt")


class ImportReport(BaseModel):
    experiment: str = Field(description="NNI experiment id read from the uploaded nni.sqlite")
    inserted: int
    updated: int
    unchanged: int
