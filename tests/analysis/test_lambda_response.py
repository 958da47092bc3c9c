"""The fitted λ-response on synthetic trials whose true response is a parabola in log10 λ with
its optimum at λ = 1: the recommendation is near it, the range contains it, too few trials say
so."""

from __future__ import annotations

import json
import math
import random

from analysis.best import best_lambda_per_layer
from analysis.lambda_response import (
    MAX_FIT_TRIALS,
    MIN_TRIALS,
    fit_lambda_response,
    group_lambda_responses,
    in_range,
)
from storage.ingest import ingest_experiment
from storage.nni.records import RawExperiment, RawTrial
from storage.queries import Group
from storage.schemas import confirmation_name


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


def test_a_large_group_is_fitted_on_a_fixed_sample_and_still_finds_the_optimum() -> None:
    lams, errs = _parabola(MAX_FIT_TRIALS * 4, seed=5)
    fit = fit_lambda_response([4], lams, errs)
    assert fit.fitted and fit.n_trials == MAX_FIT_TRIALS * 4 and fit.fitted_on == MAX_FIT_TRIALS
    assert abs(math.log10(fit.recommended[4])) < 0.5 and in_range(fit, {4: 1.0})
    assert fit_lambda_response([4], lams, errs).recommended == fit.recommended  # the same sample
    small = fit_lambda_response([4], *_parabola(60, seed=5))
    assert small.fitted_on == small.n_trials == 60


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


# ------------------------------------------------------------ which trials a group's fit sees
CMD = "python -m trials.mlp --model mlp4 --dataset digits --epochs 15 --lr 0.1"


def _raw_trial(job: str, lam: float, val: float, epochs: int = 15) -> RawTrial:
    params = {"layers": "4", "lambda_4": lam, "seed": 0}
    config = {"entry": "mlp", "model": "mlp4", "dataset": "digits", "epochs": epochs, "lr": 0.1,
              **params}  # fmt: skip
    body = {"default": val, "test_error": val, "best_epoch": 1, "config": config}
    return RawTrial(job, "SUCCEEDED", int(job[1:]), params, 1, 2, json.dumps(json.dumps(body)))


def _raw_experiment(nni_id: str, trials: list[RawTrial], name: str = "search",
                    advisor: dict | None = None) -> RawExperiment:  # fmt: skip
    config = {"trialCommand": CMD, "trialCodeDirectory": "/code", "trialConcurrency": 1,
              "maxTrialNumber": len(trials), "tuner": {"name": "Random"},
              "trainingService": {"platform": "local"}}  # fmt: skip
    if advisor is not None:
        del config["tuner"]
        config["advisor"] = advisor
    return RawExperiment(nni_id, name, "STOPPED", config, 1, 2, "sqlite", None, trials)


def test_the_fit_sees_only_full_budget_search_trials(db) -> None:
    rng = random.Random(3)
    search = [
        _raw_trial(f"s{i}", lam := 10 ** rng.uniform(-2, 2), 20 + math.log10(lam) ** 2)
        for i in range(12)
    ]
    # Hyperband (full budget R = 15 epochs): its lower rungs ran 5 epochs (partial, an error
    # far above the search's); its top rung ran the full 15 and is a search trial like any.
    rungs = [_raw_trial(f"h{i}", 10 ** rng.uniform(-2, 2), 90.0, epochs=5) for i in range(8)]
    rungs.append(_raw_trial("h99", 1.0, 20.5))
    hyperband = {"name": "Hyperband", "classArgs": {"R": 15, "eta": 3}}
    # A confirmation run of the search, on fresh seeds: never part of the search's response.
    confirm = [_raw_trial(f"c{i}", 10 ** rng.uniform(-2, 2), 70.0) for i in range(8)]
    with db.session_scope() as s:
        ingest_experiment(s, _raw_experiment("s1", search))
        ingest_experiment(s, _raw_experiment("hb", rungs, advisor=hyperband))
        ingest_experiment(s, _raw_experiment("c1", confirm, confirmation_name("mlp4", "digits",
                                                                              ["s1"])))  # fmt: skip
    for include_partial in (False, True):
        group = Group("mlp4", "digits", include_partial=include_partial)
        with db.session_scope() as s:
            (four,) = group_lambda_responses(s, group)
        assert four.layers == (4,) and four.fitted
        assert four.n_trials == 13 == len(four.trial_errors) == len(four.trial_lambdas[4])
        assert max(four.trial_errors) < 60  # no partial rung (90), no confirmation run (70)
        assert 20.5 in four.trial_errors  # Hyperband's full-budget trial
        with db.session_scope() as s:
            (fit,) = best_lambda_per_layer(s, group, fits=True).subsets
        assert fit.layers == [4] and fit.n_trials == 13 and fit.recommended == four.recommended
