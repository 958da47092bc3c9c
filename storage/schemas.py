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


class ImportReport(BaseModel):
    experiment: str = Field(description="NNI experiment id read from the uploaded nni.sqlite")
    inserted: int
    updated: int
    unchanged: int


# ---------------------------------------------------------------- results UI (issue 14)
# The experiment and compare pages and the importance endpoint. Kept in one section so that the
# storage work of other branches merges around it.


class TrialPoints(BaseModel):
    """Trials as columns (one entry per trial in every list, in completion order): what the
    pages plot and tabulate. Columns keep a 10,000-trial page to a few MB and its JS to plain
    array loops."""

    experiments: list[str] = Field(description="NNI experiment ids; ``experiment`` indexes it")
    experiment: list[int]
    trial: list[str] = Field(description="NNI trial job id")
    sequence: list[int | None]
    status: list[str]
    layers: list[str]
    family: list[str] = Field(description="vanilla, nsr, or a baseline regularizer's name")
    seed: list[int | None]
    budget: list[str | None] = Field(description="epochs/lr/batch size, None where unknown")
    partial: list[bool] = Field(description="stopped before its budget (early-stopped)")
    val_error: list[float | None]
    test_error: list[float | None]
    best_epoch: list[int | None]
    end_time: list[int | None] = Field(description="epoch milliseconds")
    lam: dict[str, list[float | None]] = Field(
        description="layer -> the λ that took effect on it (None: that layer not regularized)"
    )
    strength: list[float | None] = Field(
        description="a baseline regularizer's strength (l1_weight, ...); None for NSR/vanilla"
    )
    other: list[str] = Field(description="other effective parameters, as 'key=value' text")
    var_end: dict[str, list[float | None]] = Field(
        description="layer -> intra-class variance at the end"
    )
    curves: list[list[float | None]] = Field(
        description="validation error per epoch (empty when not asked for)"
    )


class ImportanceGroup(BaseModel):
    scope: str = Field(description="'all trials', or the layer subset / regularizer scored")
    family: str | None
    layers: str | None
    n_trials: int = Field(description="trials with a validation error in this scope")
    importances: dict[str, float] = Field(
        description="parameter -> importance (they sum to 1), largest first: "
        "optuna.importance.get_param_importances"
    )
    raw: dict[str, float] = Field(
        default_factory=dict,
        description="the same before normalization (normalize=False): comparable across groups, "
        "where a share of 1 may be a share of nothing",
    )
    note: str | None = Field(default=None, description="why there are no importances")


class Importance(BaseModel):
    method: str = Field(description="ped-anova or fanova (optuna.importance)")
    n_trials: int
    groups: list[ImportanceGroup] = Field(
        description="all trials (layer subset, regularizer, seed, and PED-ANOVA's conditional λ), "
        "then one group per regularized layer subset scoring only the λ that took effect"
    )


class CompareGroup(BaseModel):
    model: str
    dataset: str
    budget: str | None
    n_trials: int

    @property
    def key(self) -> str:
        return "/".join([self.model, self.dataset] + ([self.budget] if self.budget else []))


class CompareSeries(BaseModel):
    label: str
    key: str = Field(description="experiment id or model/dataset[/budget]")
    points: TrialPoints
