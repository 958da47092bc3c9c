"""What queries return: pydantic models, never ORM rows (they double as the API's schemas)."""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from storage.lambda_schemas import SubsetLambda

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
    role: str = Field(description="'search', or 'confirmation' (re-runs over fresh seeds)")
    confirms: list[str] | None = Field(description="the searches a confirmation confirms")
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
    family: str = Field(description="vanilla, nsr, a baseline's name, or unknown")
    regularizer: str | None
    seed: int | None
    budget: str = Field(description="training budget, e.g. 'epochs=15 lr=0.1 batch_size=100'")
    partial: bool = Field(description="not a full-budget result (early-stopped, failed, running)")
    val_error: float | None
    test_error: float | None
    best_epoch: int | None
    epoch_seconds: float | None
    parameters: dict[str, Any] = Field(description="what NNI handed the trial")
    config: dict[str, Any] | None = Field(description="the configuration it trained with")
    config_source: str | None = Field(description="report, parameters or command")
    start_time: int | None
    end_time: int | None


class TrialDetail(TrialSummary):
    final_metrics: dict[str, float] | None
    final_raw: str | None = Field(description="NNI's text when the final metric broke the contract")
    intermediate: list[float | None]
    layer_rows: list[LayerRow]


class GroupStats(BaseModel):
    config_key: str
    family: str
    layers: str
    parameters: dict[str, Any] = Field(description="the configuration, seed excluded")
    n: int = Field(description="samples: distinct seeds (a trial without one counts alone)")
    n_trials: int = Field(description="trials behind them; a seed's replicates are averaged")
    seeds: list[int | None]
    val_error_mean: float
    val_error_std: float | None = Field(description="sample std; None when n = 1")
    test_error_mean: float | None
    test_error_std: float | None
    test_errors: list[float] = Field(description="one per seed (its replicates' mean)")
    test_error_seeds: list[int | None] = Field(description="the seed of each test error")
    experiments: list[str] = Field(description="NNI experiments the trials come from")


class GroupKey(BaseModel):
    """One comparable group: a (model, data set, training budget)."""

    model: str
    dataset: str
    budget: str


class GroupAnswer(GroupKey):
    """Which comparable group an answer is for: one (model, data set, training budget)."""

    budget: str = Field(description="the training budget answered for (query parameter budget)")
    budgets: dict[str, int] = Field(description="every stored budget with its number of trials")


class Difference(BaseModel):
    """Baseline (vanilla) vs one configuration, on the test error (statistics from SciPy)."""

    baseline_mean: float | None
    treated_mean: float | None
    difference: float | None = Field(description="baseline mean − configuration mean (> 0: better)")
    ci_low: float | None = Field(description="95 % bootstrap confidence interval of the difference")
    ci_high: float | None
    confidence: float
    p_welch: float | None = Field(description="Welch's t-test, two-sided")
    n_baseline: int
    n_treated: int
    paired_seeds: int = Field(description="seeds run on both sides")
    paired_wins: int = Field(description="shared seeds on which the configuration is better")
    p_paired: float | None = Field(description="paired t-test over the shared seeds")
    seeds_needed: int | None = Field(
        description="seeds per arm to detect the observed difference at 80 % power (α = 0.05, "
        "two-sided t-test, statsmodels); None: no difference or no spread"
    )
    min_gain: float | None = Field(description="the gain the user asked to detect (?min_gain=)")
    seeds_needed_min_gain: int | None = Field(description="seeds per arm for min_gain, likewise")
    underpowered: bool | None = Field(description="fewer seeds on a side than seeds_needed")
    looks: int = Field(description="confirmation runs pooled here (1: no extension)")
    p_adjusted: float | None = Field(
        description="Welch's p × looks (Bonferroni over the looks, capped at 1): valid however "
        "often seeds were added after looking; equals p_welch for one look"
    )


WINNERS_CURSE = (
    "unconfirmed: the best of a search is its luckiest trial (one seed, picked because it scored "
    "best), so its error is biased low; confirm it over fresh seeds "
    "(POST /api/models/{model}/{dataset}/confirm) before trusting the gain"
)


class BestConfig(GroupAnswer):
    trial: TrialDetail = Field(description="the search trial with the lowest validation error")
    n_trials: int = Field(description="full-budget search trials of the group with an error")
    confirmed: bool = Field(description="confirmation runs of this configuration exist")
    confirmation: GroupStats | None = Field(
        description="the configuration over fresh seeds (confirmation runs), when confirmed"
    )
    caveat: str | None


class LayerLambda(BaseModel):
    layer: int
    lam: float | None
    val_error: float
    test_error: float | None
    experiment: str
    trial_job_id: str
    n_trials: int = Field(description="single-layer trials on this layer")


class BestLambdas(GroupAnswer):
    layers: list[LayerLambda] = Field(description="per layer, its best single search trial")
    subsets: list[SubsetLambda] = Field(
        default=[], description="per NSR layer subset (1-2 layers), the fitted λ-response"
    )
    caveat: str | None = Field(description="each λ is one search trial's: see compare")


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


class LayerRecommendation(GroupAnswer):
    variance_ranking: list[LayerVariance] = Field(description="largest variance first")
    recommended_layer: int | None = Field(description="the paper's rule: largest variance")
    empirical_ranking: list[LayerError] = Field(description="lowest validation error first")
    empirical_best_layer: int | None = Field(description="single-layer config with lowest error")
    agree: bool | None


class ConfigVerdict(BaseModel):
    stats: GroupStats
    versus_vanilla: Difference | None = Field(description="test error, vanilla − this")
    versus_nsr: Difference | None = Field(
        description="test error, the best NSR configuration − this (baselines, Table 4)"
    )


class Comparison(GroupAnswer):
    summary: str = Field(
        description="the verdict in one sentence: what to use, the gain in points with its "
        "95 % interval and p, the seeds behind it and how many would be enough"
    )
    summary_config_key: str | None = Field(description="the configuration the summary is about")
    confirmed: bool = Field(
        description="true: the groups are confirmation runs over fresh seeds; false: search "
        "trials only (winner's curse, see caveat)"
    )
    confirmation_experiments: list[str]
    caveat: str | None
    vanilla: GroupStats | None
    nsr: GroupStats | None = Field(description="the best NSR configuration")
    configurations: list[ConfigVerdict] = Field(
        description="every compared configuration (best of each family when unconfirmed), "
        "lowest mean validation error first"
    )
    val_error_gain: float | None = Field(
        description="vanilla mean − NSR mean (> 0: NSR better)"
    )
    test_error_gain: float | None
    test_error_difference: Difference | None = Field(description="vanilla vs the best NSR")
    min_gain: float | None = Field(description="the gain (points) the power figures size for")


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


class PlannedConfiguration(BaseModel):
    config_key: str | None = Field(description="None: vanilla made up (the search had none)")
    family: str
    layers: str
    parameters: dict[str, Any] = Field(description="the NNI parameters each of its trials gets")
    configuration: dict[str, Any] = Field(description="what its trials train with")
    search_val_error: float | None = Field(description="its best single search trial")
    fitted_lambda: dict[int, float] | None = Field(
        default=None,
        description="the fitted λ-response's recommended λ per layer, run instead of the search "
        "trial's own λ (which lay in the near-optimal range); None: the trial's λ",
    )


# How a confirmation experiment's NNI name marks it and the searches it confirms: written by
# analysis.confirmation's plan, read back by storage.parse when the experiment syncs.
CONFIRM_NAME = re.compile(r"^nsr-confirm \S+ of ([A-Za-z0-9_-]+(?:,[A-Za-z0-9_-]+)*)$")


def confirmation_name(model: str, dataset: str, searches: list[str]) -> str:
    """The NNI experiment name that marks a confirmation experiment."""
    return f"nsr-confirm {model}/{dataset} of {','.join(searches)}"


def confirmed_searches(name: str | None) -> list[str] | None:
    """The search experiments a confirmation experiment confirms (from its name), else None."""
    m = CONFIRM_NAME.match(name or "")
    return m.group(1).split(",") if m else None


class ConfirmationPlan(GroupKey):
    searches: list[str] = Field(description="the search experiments whose configurations it runs")
    configurations: list[PlannedConfiguration]
    seeds: list[int] = Field(description="fresh: no stored trial of (model, dataset) used them")
    n_trials: int
    experiment: dict[str, Any] = Field(description="the NNI experiment config (Batch tuner)")
    yaml: str = Field(description="the same, as YAML for nnictl create --config")
    user_command: str | None = Field(
        default=None,
        description="the command the user named for a foreign search (shown back: it is run "
        "as given); None when the plan's command is this project's own trial",
    )


class ConfirmationStarted(BaseModel):
    plan: ConfirmationPlan
    started: bool
    nni_id: str | None = Field(description="the NNI experiment started, when start=true")
    nni_url: str | None
    config_path: str | None = Field(description="where the YAML was written")


class WarmStart(GroupKey):
    source_experiment: str = Field(description="the search whose settings it copies")
    layers: list[int] = Field(description="layers kept besides 'none'")
    lambda_ranges: dict[str, list[float]] = Field(description="layer -> [low, high] of λ")
    recommended_layer: int | None
    empirical_best_layer: int | None
    experiment: dict[str, Any]
    yaml: str
    user_command: str | None = Field(
        default=None, description="the command the user named for a foreign search, shown back"
    )


class ReportCell(BaseModel):
    """One cell of a paper-style table: test error mean ± std over n trials."""

    label: str
    config_key: str | None
    layers: str | None
    family: str | None
    mean: float | None
    std: float | None
    n: int
    confirmed: bool = Field(description="from confirmation runs (else the search's own trials)")
    paper: str | None = Field(description="the paper's figure for the same cell, where comparable")
    p_welch: float | None = Field(description="vs vanilla (Welch), confirmed cells")
    ci_low: float | None
    ci_high: float | None


class ReportGroup(GroupKey):
    family_of_models: str = Field(description="mlp, cnn or gnn")
    table1: list[ReportCell] = Field(description="vanilla vs the best NSR (Tables 1-3)")
    by_layers: list[ReportCell] = Field(description="per layer subset (Tables 6-7)")
    by_regularizer: list[ReportCell] = Field(description="per regularizer family (Table 4)")


class PaperReport(BaseModel):
    groups: list[ReportGroup]


# ---------------------------------------------------------------- results UI
# The experiment and compare pages and the importance endpoint.


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
