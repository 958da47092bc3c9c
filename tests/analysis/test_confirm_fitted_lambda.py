"""Confirmation plans run the fitted λ of the best layer subsets, one candidate per near-optimal
range, on a search whose λ-response is known (a parabola in log10 λ, optimum at λ = 1)."""

from __future__ import annotations

import math

import numpy as np
from handmade import experiment, trial

from analysis.confirmation import confirmation_plan
from analysis.lambda_response import group_lambda_responses
from storage import queries as q
from storage.ingest import ingest_experiment

G = q.Group("mlp4", "digits")


def parabola_search() -> list:
    rng = np.random.default_rng(3)
    out = [trial(i, "none", i, 9.0, 9.5) for i in range(3)]  # vanilla
    for i, x in enumerate(np.linspace(-2, 2, 21)):  # λ3 from 0.01 to 100, optimum at 1
        val = 5.0 + 1.5 * x**2 + rng.normal(0, 0.3)
        out.append(trial(10 + i, "3", i % 3, val, val + 0.5, lam=float(10**x)))
    for i in range(3):  # layer 4: too few trials to fit, worse than layer 3's best
        out.append(trial(40 + i, "4", i, 7.0 + i, 7.5 + i, lam=0.5))
    return out


def test_the_plan_runs_the_fitted_lambda_once_per_near_optimal_range(db) -> None:
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s1", parabola_search()))
    with db.session_scope() as s:
        [fit] = [r for r in group_lambda_responses(s, G) if r.layers == (3,)]
        plan = confirmation_plan(s, G, top_k=3, n_seeds=2)
    lo, hi = fit.range[3]
    assert fit.fitted and lo < 1.0 < hi  # the known optimum lies in the range
    planned = [c for c in plan.configurations if c.family == "nsr"]
    first = planned[0]
    assert first.layers == "3" and first.fitted_lambda == {3: float(f"{fit.recommended[3]:.3g}")}
    assert abs(math.log10(first.fitted_lambda[3])) < 0.5  # near the true optimum, λ = 1
    assert first.parameters["lambda_3"] == first.fitted_lambda[3]  # what the trials get
    # Every other layer-3 candidate lies outside the range: inside it, it would be the same one.
    others = [c.parameters["lambda_3"] for c in planned[1:] if c.layers == "3"]
    assert others and all(not lo <= lam <= hi for lam in others)
    assert all(c.fitted_lambda is None for c in planned[1:])
    # The search had more in-range layer-3 trials than the one kept.
    in_range = [t for t in parabola_search() if t.parameters.get("layers") == "3"
                and lo <= t.parameters["lambda_3"] <= hi]  # fmt: skip
    assert len(in_range) >= 2
