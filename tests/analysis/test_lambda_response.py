"""The fitted λ-response on synthetic trials whose true response is a parabola in log10 λ with
its optimum at λ = 1: the recommendation is near it, the range contains it, too few trials say
so."""

from __future__ import annotations

import math
import random

from analysis.lambda_response import MIN_TRIALS, fit_lambda_response, in_range


def _parabola(n: int, seed: int, noise: float = 0.5) -> tuple[list[list[float]], list[float]]:
    rng = random.Random(seed)
    lams = [[10 ** rng.uniform(-2, 2)] for _ in range(n)]
    errs = [20.0 + math.log10(lam[0]) ** 2 + rng.gauss(0, noise) for lam in lams]
    return lams, errs


def test_recommended_lambda_is_near_the_true_optimum_and_the_range_holds_it() -> None:
    for seed in range(3):
        lams, errs = _parabola(60, seed)
        fit = fit_lambda_response([4], lams, errs)
        assert fit.fitted
        # Documented tolerance: within half a decade of the optimum λ = 1 on 60 trials.
        assert abs(math.log10(fit.recommended[4])) < 0.5
        lo, hi = fit.range[4]
        assert lo <= 1.0 <= hi
        assert in_range(fit, {4: 1.0}) and not in_range(fit, {4: 100.0})
        assert fit.noise_sd is not None and 0.2 < fit.noise_sd < 1.0
        assert len(fit.mean) == len(fit.grid[4]) == len(fit.band_low)
        assert all(
            a <= m <= b for a, m, b in zip(fit.band_low, fit.mean, fit.band_high, strict=True)
        )


def test_two_layers_fit_on_a_grid() -> None:
    rng = random.Random(1)
    lams = [[10 ** rng.uniform(-2, 2), 10 ** rng.uniform(-2, 2)] for _ in range(80)]
    errs = [
        20 + math.log10(a) ** 2 + 0.5 * math.log10(b / 10) ** 2 + rng.gauss(0, 0.3) for a, b in lams
    ]
    fit = fit_lambda_response([3, 4], lams, errs)
    assert fit.fitted
    assert len(fit.mean) == len(fit.grid[3]) * len(fit.grid[4])
    assert abs(math.log10(fit.recommended[3])) < 0.6


def test_too_few_trials_say_so_instead_of_fitting() -> None:
    lams, errs = _parabola(MIN_TRIALS - 1, 0)
    fit = fit_lambda_response([4], lams, errs)
    assert not fit.fitted and fit.reason and f"needs {MIN_TRIALS}" in fit.reason
    assert fit.recommended == {}
