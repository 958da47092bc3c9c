"""Fitted λ vs the single best trial's λ on synthetic searches whose true response is known:
validation error = 20 + c·(log10 λ)² + noise (optimum λ = 1), λ loguniform in [0.01, 100].
Prints, over many draws, the mean |log10 λ − 0| of the GP's recommendation and of the best
single trial, and how often the near-optimal range contains the optimum.

    python -m benchmarks.lambda_response [--draws 50 --trials 40 --noise 1.0 --curvature 0.5]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics

from analysis.lambda_response import fit_lambda_response


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=50)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--curvature", type=float, default=0.5)
    a = ap.parse_args()
    fit_err, best_err, covered = [], [], 0
    for draw in range(a.draws):
        rng = random.Random(draw)
        lams = [10 ** rng.uniform(-2, 2) for _ in range(a.trials)]
        errs = [20 + a.curvature * math.log10(x) ** 2 + rng.gauss(0, a.noise) for x in lams]
        fit = fit_lambda_response([4], [[x] for x in lams], errs)
        fit_err.append(abs(math.log10(fit.recommended[4])))
        best = min(range(a.trials), key=errs.__getitem__)
        best_err.append(abs(math.log10(lams[best])))
        lo, hi = fit.range[4]
        covered += lo <= 1.0 <= hi
    print(f"draws={a.draws} trials={a.trials} noise_sd={a.noise} curvature={a.curvature}")
    print(
        f"mean |log10 λ - log10 λ*|: fitted {statistics.fmean(fit_err):.3f}, "
        f"best single trial {statistics.fmean(best_err):.3f} "
        f"(ratio {statistics.fmean(best_err) / statistics.fmean(fit_err):.2f}x)"
    )
    print(f"near-optimal range contains λ* in {covered} of {a.draws} draws")


if __name__ == "__main__":
    main()
