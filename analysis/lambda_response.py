"""The λ-response of a layer subset: validation error as a function of log10 λ, fitted on every
trial of the subset (scikit-learn's ``GaussianProcessRegressor``), instead of one lucky trial's λ.

The model: a Gaussian process on x = log10 λ (one dimension per regularized layer), kernel
``ConstantKernel · RBF + WhiteKernel``; the WhiteKernel is the trial-to-trial noise (seeds), so the
fitted mean is smooth and its noise level is estimated from the data. Targets are centred.

From the fit:
- **recommended λ**: the minimum of the fitted mean over a grid spanning the trials' log λ;
- **near-optimal range** (the rule): every grid point whose fitted mean lies within one noise
  standard deviation (√ of the WhiteKernel's level) of the minimum; per layer, the span of those
  points. A point that close cannot be told apart from the optimum by a single trial;
- the fitted curve with its band (mean ± 2 sd of the fitted mean, noise excluded).
Below ``MIN_TRIALS`` trials per regularized layer (at least ``MIN_TRIALS``), no fit: the answer
says so (``fitted=False`` and why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from storage.db import Session
from storage.queries import Group, list_scored_trials, resolve_budget, search_trials
from storage.schemas import SubsetLambda

MIN_TRIALS = 6  # per regularized layer: fewer than that fits the noise, not a curve
# A GP fit costs O(n³): 31 s at 1,500 trials on a busy 2-core machine, past the answer deadline.
# Above this many, the fit uses a fixed-seed random sample of them (the same trials give the same
# sample); the mean and noise of a smooth 1-2-D curve are well determined by a few hundred.
MAX_FIT_TRIALS = 300
GRID_1D = 101
GRID_2D = 41


@dataclass(frozen=True)
class LambdaResponse:
    """The fitted λ-response of one layer subset (``layers`` "4" or "3,4")."""

    layers: tuple[int, ...]
    n_trials: int
    fitted: bool
    reason: str | None = None
    recommended: dict[int, float] = field(default_factory=dict)
    range: dict[int, tuple[float, float]] = field(default_factory=dict)
    noise_sd: float | None = None
    fitted_on: int | None = None  # trials the GP saw: all, or a sample of MAX_FIT_TRIALS
    best_fitted_error: float | None = None
    #: 1-D: grid λ, mean and band; 2-D: the two axes' λ and the mean on the grid (row-major,
    #: first layer along the rows).
    grid: dict[int, list[float]] = field(default_factory=dict)
    mean: list[float] = field(default_factory=list)
    band_low: list[float] = field(default_factory=list)
    band_high: list[float] = field(default_factory=list)
    #: The trials fitted on (the plots draw them under the curve): λ per layer, and their
    #: validation errors, in the same order.
    trial_lambdas: dict[int, list[float]] = field(default_factory=dict)
    trial_errors: list[float] = field(default_factory=list)


def min_trials(n_layers: int) -> int:
    return MIN_TRIALS * max(1, n_layers)


def fit_lambda_response(
    layers: Sequence[int], lambdas: Sequence[Sequence[float]], errors: Sequence[float]
) -> LambdaResponse:
    """Fit ``errors`` on log10 of ``lambdas`` (one row per trial, one column per layer)."""
    import numpy as np
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

    layers_t = tuple(int(k) for k in layers)
    d = len(layers_t)
    rows = [
        (list(lam), float(e))
        for lam, e in zip(lambdas, errors, strict=True)
        if len(lam) == d and all(x is not None and x > 0 for x in lam) and math.isfinite(e)
    ]
    n = len(rows)
    need = min_trials(d)
    seen = {
        "trial_lambdas": {k: [r[0][i] for r in rows] for i, k in enumerate(layers_t)},
        "trial_errors": [r[1] for r in rows],
    }
    if d not in (1, 2):
        return LambdaResponse(layers_t, n, False, f"a fit covers 1 or 2 layers, not {d}", **seen)
    if n < need:
        why = f"{n} trials with a λ on layers {layers_t}: a fit needs {need}"
        return LambdaResponse(layers_t, n, False, why, **seen)
    x = np.log10(np.asarray([r[0] for r in rows], dtype=float))  # (n, d)
    y = np.asarray([r[1] for r in rows], dtype=float)  # (n,)
    if n > MAX_FIT_TRIALS:
        keep = np.sort(np.random.default_rng(0).choice(n, MAX_FIT_TRIALS, replace=False))
        x, y = x[keep], y[keep]  # (MAX_FIT_TRIALS, d), (MAX_FIT_TRIALS,)
    y_mean, y_sd = float(y.mean()), float(y.std()) or 1.0
    kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(
        length_scale=[1.0] * d, length_scale_bounds=(0.1, 10.0)
    ) + WhiteKernel(0.1, (1e-6, 10.0))
    # Fixed restarts and generator: the same trials give the same fit.
    gp = GaussianProcessRegressor(kernel, normalize_y=False, n_restarts_optimizer=2,
                                  random_state=0)  # fmt: skip
    gp.fit(x, (y - y_mean) / y_sd)
    noise_sd = math.sqrt(gp.kernel_.k2.noise_level) * y_sd
    lo, hi = x.min(axis=0), x.max(axis=0)  # (d,)
    if d == 1:
        axes = [np.linspace(lo[0], hi[0], GRID_1D)]
        pts = axes[0][:, None]  # (G, 1)
    else:
        axes = [np.linspace(lo[k], hi[k], GRID_2D) for k in range(2)]
        g0, g1 = np.meshgrid(axes[0], axes[1], indexing="ij")  # (G, G) each
        pts = np.column_stack([g0.ravel(), g1.ravel()])  # (G*G, 2)
    mu, sd = gp.predict(pts, return_std=True)  # (P,), (P,): sd of the mean incl. noise
    mu = mu * y_sd + y_mean
    # return_std includes the WhiteKernel's noise: the band is of the mean, so take it out.
    sd_mean = np.sqrt(np.maximum((sd * y_sd) ** 2 - noise_sd**2, 0.0))
    best = int(np.argmin(mu))
    near = pts[mu <= mu[best] + noise_sd]  # (m, d): the near-optimal rule
    return LambdaResponse(
        layers=layers_t,
        n_trials=n,
        fitted=True,
        recommended={k: float(10 ** pts[best, i]) for i, k in enumerate(layers_t)},
        range={
            k: (float(10 ** near[:, i].min()), float(10 ** near[:, i].max()))
            for i, k in enumerate(layers_t)
        },
        noise_sd=noise_sd,
        fitted_on=len(y),
        best_fitted_error=float(mu[best]),
        grid={k: [float(10**v) for v in axes[i]] for i, k in enumerate(layers_t)},
        mean=[float(v) for v in mu],
        band_low=[float(v) for v in mu - 2 * sd_mean],
        band_high=[float(v) for v in mu + 2 * sd_mean],
        **seen,
    )


def in_range(response: LambdaResponse, lambdas: dict[int, float]) -> bool:
    """Whether ``lambdas`` lie inside the response's near-optimal range on every layer (two
    confirmation candidates inside one range are one candidate)."""
    if not response.fitted:
        return False
    return all(k in lambdas and lo <= lambdas[k] <= hi for k, (lo, hi) in response.range.items())


def group_lambda_responses(session: Session, group: Group) -> list[LambdaResponse]:
    """The fitted λ-response of every NSR layer subset of one or two layers in the group's
    budget, over its full-budget *search* trials with a validation error (never a partial one,
    such as an early-stopped trial or a Hyperband trial on a lower rung, even with
    ``include_partial``; never a confirmation run); fewest layers first."""
    budget = resolve_budget(session, group).budget
    full = replace(group, include_partial=False)
    trials = replace(search_trials(full, budget), family="nsr")
    by_subset: dict[tuple[int, ...], tuple[list[list[float]], list[float]]] = {}
    for t in list_scored_trials(session, trials):
        key = tuple(sorted(t.strengths.lambdas))
        if key and len(key) <= 2:
            lams, errs = by_subset.setdefault(key, ([], []))
            lams.append([t.strengths.lambdas[k] for k in key])
            errs.append(t.val_error)
    return [
        fit_lambda_response(key, *by_subset[key])
        for key in sorted(by_subset, key=lambda k: (len(k), k))
    ]


def group_lambda_responses_json(session: Session, group: Group) -> bytes:
    """The same as JSON bytes (a module-level function of plain arguments: the cache may run it
    in another process)."""
    import orjson

    return orjson.dumps(
        {"model": group.model, "dataset": group.dataset,
         "budget": resolve_budget(session, group).budget,
         "min_trials_per_layer": MIN_TRIALS,
         "responses": group_lambda_responses(session, group)},
        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
    )  # fmt: skip


def subset_lambda(response: LambdaResponse | Mapping[str, Any]) -> SubsetLambda:
    """``best-lambda``'s summary of one response (or of its JSON, as the cache holds it):
    recommended λ, near-optimal range, trials and noise sd; null with the reason when unfitted."""
    r = asdict(response) if isinstance(response, LambdaResponse) else response
    fitted = bool(r["fitted"])
    return SubsetLambda(
        layers=list(r["layers"]),
        n_trials=r["n_trials"],
        recommended=r["recommended"] if fitted else None,
        range=r["range"] if fitted else None,
        noise=r["noise_sd"] if fitted else None,
        best_fitted_error=r["best_fitted_error"] if fitted else None,
        reason=r["reason"],
    )
