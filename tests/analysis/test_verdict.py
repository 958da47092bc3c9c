"""Budgets, confirmation runs and the statistics of the verdict, on hand-made experiments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from reference_stats import bootstrap_ci
from scipy import stats

from analysis.best import best_config, best_lambda_per_layer
from analysis.confirmation import FIRST_FRESH_SEED, confirmation_plan
from analysis.report import paper_report
from analysis.verdict import compare
from analysis.warm_start import warm_start
from storage import queries as q
from storage.errors import InvalidValue
from storage.ingest import ingest_experiment
from storage.nni.records import RawExperiment, RawTrial
from storage.schemas import confirmation_name

CMD = "python -m trials.mlp --model mlp4 --dataset digits --epochs {epochs} --lr 0.1"
#: What a plan runs on the local training service: the same trial through the warm launcher.
WARM_CMD = "python -m trials.warm mlp --model mlp4 --dataset digits --epochs {epochs} --lr 0.1"


def final(val, test, config=None, var=(20.0, 30.0, 40.0)):
    body = {"default": val, "test_error": test, "best_epoch": 3, "var_2": var[0],
            "var_3": var[1], "var_4": var[2]}  # fmt: skip
    if config is not None:
        body["config"] = config
    return json.dumps(json.dumps(body))


def reported(params, epochs=15):
    """The configuration one of this project's trials reports for ``params`` (CMD's flags)."""
    return {"entry": "mlp", "model": "mlp4", "dataset": "digits", "epochs": epochs, "lr": 0.1,
            **params}  # fmt: skip


def t(job, layers, seed, val, test, lam=None, status="SUCCEEDED", config=None, epochs=15):
    params = {"layers": layers, "seed": seed}
    if lam is not None:
        params[f"lambda_{layers}"] = lam
    config = reported(params, epochs) if config is None else config
    return RawTrial(job, status, int(job[1:]), params, 1, 2, final(val, test, config), [val])


def experiment(nni_id, trials, epochs=15, name="search"):
    config = {"trialCommand": CMD.format(epochs=epochs), "trialCodeDirectory": "/code",
              "trialConcurrency": 2, "maxTrialNumber": 9, "tuner": {"name": "Random"},
              "searchSpace": {"layers": {"_type": "choice", "_value": ["none", "3", "4"]},
                              "lambda_3": {"_type": "loguniform", "_value": [0.01, 100]},
                              "lambda_4": {"_type": "loguniform", "_value": [0.01, 100]},
                              "seed": {"_type": "choice", "_value": [0, 1, 2]}},
              "trainingService": {"platform": "local", "trialCommand": "x", "debug": False}}
    return RawExperiment(nni_id, name, "STOPPED", config, 1, 2, "sqlite", None, trials)


SEARCH = [
    t("t1", "none", 0, 10.0, 11.0), t("t2", "none", 1, 10.4, 11.2), t("t3", "none", 2, 10.2, 11.1),
    # the luckiest trial: best validation error, but its test error is not the lowest
    t("t4", "3", 0, 8.0, 9.0, lam=2.0),
    # lowest test error, higher validation error: best-config must not pick it
    t("t5", "4", 1, 8.2, 8.0, lam=0.5),
    t("t6", "3", 2, 9.0, 9.5, lam=30.0),
    t("t7", "4", 0, 9.5, 10.0, lam=0.05),
]  # fmt: skip
# The same model and data set trained 100 epochs: a better error that must never be ranked
# against the 15-epoch search.
LONG = [t("l1", "none", 0, 2.0, 2.5, epochs=100), t("l2", "4", 0, 1.0, 1.5, lam=7.0, epochs=100)]


@pytest.fixture
def searched(db):
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s15", SEARCH))
        ingest_experiment(s, experiment("s100", LONG, epochs=100))
    return db


G = q.Group("mlp4", "digits")


def test_best_config_ranks_validation_error_within_one_budget(searched):
    with searched.session_scope() as s:
        best = best_config(s, G)
        assert best.budget == "epochs=15 lr=0.1"  # the budget with the most trials
        assert best.budgets == {"epochs=15 lr=0.1": 7, "epochs=100 lr=0.1": 2}
        assert best.trial.trial_job_id == "t4"  # lowest validation error, not lowest test error
        assert best.n_trials == 7 and not best.confirmed and "luckiest" in best.caveat
        other = best_config(s, q.Group("mlp4", "digits", "epochs=100 lr=0.1"))
        assert other.trial.trial_job_id == "l2" and other.n_trials == 2
        lams = best_lambda_per_layer(s, G)
        assert [(r.layer, r.trial_job_id) for r in lams.layers] == [(3, "t4"), (4, "t5")]
        cmp = compare(s, G)
        assert cmp.vanilla.n == 3 and cmp.vanilla.experiments == ["s15"]
        with pytest.raises(InvalidValue, match=r"budget='epochs=7'.*epochs=15 lr=0.1"):
            compare(s, q.Group("mlp4", "digits", "epochs=7"))


def confirmation_trials(plan_sets, results):
    """Trials of a confirmation experiment: each parameter set with its (val, test) result."""
    out = []
    for i, (params, (val, test)) in enumerate(zip(plan_sets, results, strict=True)):
        config = {"entry": "mlp", "model": "mlp4", "dataset": "digits", "epochs": 15, "lr": 0.1,
                  **{k: v for k, v in params.items()}}  # fmt: skip
        out.append(RawTrial(f"c{i}", "SUCCEEDED", i, params, 1, 2, final(val, test, config), []))
    return out


def test_confirmation_plan_then_verdict_uses_only_confirmation_trials(searched):
    with searched.session_scope() as s:
        plan = confirmation_plan(s, G, top_k=2, n_seeds=3)
    assert plan.budget == "epochs=15 lr=0.1" and plan.searches == ["s15"]
    assert [c.layers for c in plan.configurations] == ["3", "4", "none"]
    assert plan.seeds == [FIRST_FRESH_SEED, FIRST_FRESH_SEED + 1, FIRST_FRESH_SEED + 2]
    exp = yaml.safe_load(plan.yaml)
    assert exp["tuner"] == {"name": "Batch"} and exp["maxTrialNumber"] == 9 == plan.n_trials
    assert exp["trialCommand"] == WARM_CMD.format(epochs=15)
    assert "trialCommand" not in exp["trainingService"]
    sets = exp["searchSpace"]["combine_params"]["_value"]
    assert sets[0] == {"layers": "3", "lambda_3": 2.0, "seed": FIRST_FRESH_SEED}
    assert {p["seed"] for p in sets} == set(plan.seeds)

    # Layer 3 is confirmed better than vanilla; layer 4 (the search's lucky 8.2) is not.
    by_layers = {"3": [(9.0, 9.1), (9.2, 9.3), (9.1, 9.0)],
                 "4": [(10.1, 11.6), (10.3, 11.5), (10.2, 11.7)],
                 "none": [(10.0, 11.0), (10.5, 11.4), (10.2, 11.1)]}  # fmt: skip
    seen: dict[str, int] = {}
    results = []
    for p in sets:
        i = seen[p["layers"]] = seen.get(p["layers"], -1) + 1
        results.append(by_layers[p["layers"]][i])
    name = confirmation_name("mlp4", "digits", plan.searches)
    with searched.session_scope() as s:
        ingest_experiment(s, experiment("conf1", confirmation_trials(sets, results), name=name))
    with searched.session_scope() as s:
        cmp = compare(s, G)
        best = best_config(s, G)
        exps = {e.nni_id: e for e in q.list_experiments(s).items}
    assert exps["conf1"].role == "confirmation" and exps["conf1"].confirms == ["s15"]
    assert cmp.confirmed and cmp.caveat is None and cmp.confirmation_experiments == ["conf1"]
    assert cmp.vanilla.experiments == ["conf1"] and cmp.vanilla.n == 3
    assert [v.stats.layers for v in cmp.configurations] == ["3", "4"]
    nsr = cmp.configurations[0]
    vanilla_tests = [t for _, t in by_layers["none"]]
    nsr_tests = [t for _, t in by_layers["3"]]
    assert nsr.stats.test_errors == nsr_tests and cmp.vanilla.test_errors == vanilla_tests
    d = nsr.versus_vanilla
    assert d.difference == pytest.approx(np.mean(vanilla_tests) - np.mean(nsr_tests))
    assert d.p_welch == pytest.approx(
        stats.ttest_ind(vanilla_tests, nsr_tests, equal_var=False).pvalue
    )
    assert (d.ci_low, d.ci_high) == pytest.approx(bootstrap_ci(vanilla_tests, nsr_tests))
    assert d.ci_low > 0  # confirmed: the whole interval says NSR is better
    assert (d.paired_seeds, d.paired_wins) == (3, 3)
    assert d.p_paired == pytest.approx(stats.ttest_rel(vanilla_tests, nsr_tests).pvalue)
    layer4 = cmp.configurations[1].versus_vanilla
    assert layer4.difference < 0 and layer4.paired_wins == 0
    # best-config: the search's best trial, now with its configuration's confirmation beside it.
    assert best.trial.trial_job_id == "t4" and best.confirmed
    assert best.confirmation.n == 3 and best.confirmation.test_errors == nsr_tests
    # Confirmation trials never enter the search rankings.
    with searched.session_scope() as s:
        assert best_config(s, G).n_trials == 7
        # and the next plan uses seeds no trial has used yet
        assert confirmation_plan(s, G, top_k=1, n_seeds=2).seeds == [1003, 1004]


def test_confirmation_plan_bad_arguments(searched):
    with searched.session_scope() as s:
        with pytest.raises(InvalidValue, match="top_k=0.*1..20"):
            confirmation_plan(s, G, top_k=0)
        with pytest.raises(InvalidValue, match="seeds=1.*2..50"):
            confirmation_plan(s, G, n_seeds=1)


def test_warm_start_narrows_layers_and_lambda(searched):
    with searched.session_scope() as s:
        ws = warm_start(s, G)
    # Vanilla variances: layer 4 largest (rule); best single-layer trial: layer 3 (t4).
    assert (ws.recommended_layer, ws.empirical_best_layer) == (4, 3)
    space = ws.experiment["searchSpace"]
    assert space["layers"] == {"_type": "choice", "_value": ["none", "3", "4"]}
    # layer 3's λ: trials 2.0 (best) and 30.0 -> [2/3, 90]; layer 4's: 0.5, 0.05 -> [0.0167, 1.5]
    assert space["lambda_3"]["_value"] == pytest.approx([2.0 / 3, 90.0])
    assert space["lambda_4"]["_value"] == pytest.approx([0.05 / 3, 1.5])
    assert space["seed"] == {"_type": "choice", "_value": [0, 1, 2]}
    assert ws.experiment["trialCommand"] == WARM_CMD.format(epochs=15)
    assert yaml.safe_load(ws.yaml) == ws.experiment


def test_report_has_one_group_per_budget_with_unconfirmed_cells(searched):
    with searched.session_scope() as s:
        report = paper_report(s)
    assert [(g.model, g.budget) for g in report.groups] == [
        ("mlp4", "epochs=100 lr=0.1"), ("mlp4", "epochs=15 lr=0.1")]  # fmt: skip
    g = report.groups[1]
    vanilla, nsr = g.table1
    assert (vanilla.n, vanilla.mean) == (3, pytest.approx((11.0 + 11.2 + 11.1) / 3))
    assert not nsr.confirmed and nsr.layers == "3" and nsr.paper is None  # digits: no paper cell
    assert [c.layers for c in g.by_layers] == ["none", "3", "4"]


def test_per_family_plan_and_baselines_against_nsr(db):
    def reg(job, seed, val, test, weight):
        params = {"regularizer": "l1", "l1_weight": weight, "layers": "none", "seed": seed}
        config = final(val, test, reported(params))
        return RawTrial(job, "SUCCEEDED", int(job[1:]), params, 1, 2, config, [val])

    search = [*SEARCH, reg("t8", 0, 8.1, 9.9, 0.01), reg("t9", 1, 9.9, 10.5, 0.1)]
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s15", search))
        top = confirmation_plan(s, G, top_k=2, n_seeds=2)
        plan = confirmation_plan(s, G, top_k=1, n_seeds=2, per_family=True)
    assert [c.family for c in top.configurations] == ["nsr", "l1", "vanilla"]  # 8.0, 8.1
    assert [(c.family, c.layers) for c in plan.configurations] == [
        ("nsr", "3"), ("l1", "none"), ("vanilla", "none")]  # fmt: skip
    sets = plan.experiment["searchSpace"]["combine_params"]["_value"]
    assert {"regularizer": "l1", "l1_weight": 0.01, "layers": "none", "seed": 1000} in sets
    tests = {"nsr": [9.0, 9.2], "l1": [10.0, 10.4], "vanilla": [11.0, 11.2]}
    results = []
    for p in sets:
        family = "l1" if p.get("regularizer") == "l1" else ("nsr" if p["layers"] != "none"
                                                             else "vanilla")  # fmt: skip
        results.append((tests[family][p["seed"] - 1000], tests[family][p["seed"] - 1000]))
    name = confirmation_name("mlp4", "digits", plan.searches)
    with db.session_scope() as s:
        ingest_experiment(s, experiment("conf", confirmation_trials(sets, results), name=name))
        cmp = compare(s, G)
    by_family = {v.stats.family: v for v in cmp.configurations}
    assert set(by_family) == {"nsr", "l1"} and cmp.confirmed
    l1 = by_family["l1"]
    assert l1.versus_vanilla.difference == pytest.approx(11.1 - 10.2)
    assert l1.versus_nsr.difference == pytest.approx(9.1 - 10.2)  # NSR better than L1
    assert by_family["nsr"].versus_nsr is None
