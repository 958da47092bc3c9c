"""The λ-response's answer inside ``best-lambda`` (a schema module of its own beside
``schemas.py``, which re-exports it): per NSR layer subset, the recommended λ and its near-optimal
range from the fit over the group's trials (``analysis/lambda_response.py``), or why not."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SubsetLambda(BaseModel):
    """One NSR layer subset's fitted λ-response (``…/lambda-response`` serves its curve)."""

    layers: list[int] = Field(description="the regularized layer subset, e.g. [4] or [3, 4]")
    n_trials: int = Field(description="full-budget search trials of the subset that were fitted")
    recommended: dict[int, float] | None = Field(
        description="per layer, the λ at the minimum of the fitted mean; null: no fit (reason)"
    )
    range: dict[int, tuple[float, float]] | None = Field(
        description="per layer, the near-optimal range [low, high]: the λ whose fitted mean lies "
        "within one noise sd of the minimum; null: no fit"
    )
    noise: float | None = Field(
        description="the fit's noise sd (validation error %, trial to trial); null: no fit"
    )
    best_fitted_error: float | None = Field(
        description="the fitted mean validation error % at the recommended λ; null: no fit"
    )
    reason: str | None = Field(description="why there is no fit (too few trials); null: fitted")
