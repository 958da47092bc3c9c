"""Samples are seeds, power from statsmodels, pooled looks adjusted, and the sentence that says
the verdict, on hand-made experiments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from handmade import experiment, results, trial
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from analysis.confirmation import confirmation_plan
from analysis.statistics import difference
from analysis.verdict import compare
from storage import queries as q
from storage.errors import InvalidValue, NotFound
from storage.ingest import ingest_experiment
from storage.schemas import confirmation_name

G = q.Group("mlp4", "digits")


def test_replicates_of_one_seed_count_once(db) -> None:
    # A fixed-seed search drew vanilla twice with seed 0: one sample, not two with std 0.
    search = results([("none", 0, 11.0), ("none", 0, 11.0), ("none", 1, 13.0),
                      ("3", 0, 9.0), ("3", 1, 10.0), ("3", 1, 10.4)])  # fmt: skip
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s1", search))
    with db.session_scope() as s:
        cmp = compare(s, G)
    assert (cmp.vanilla.n, cmp.vanilla.n_trials, cmp.vanilla.seeds) == (2, 3, [0, 1])
    assert cmp.vanilla.test_errors == [11.0, 13.0] and cmp.vanilla.test_error_std == pytest.approx(
        math.sqrt(2)
    )
    assert cmp.nsr.test_errors == pytest.approx([9.0, 10.2])  # seed 1's two replicates, averaged
    d = cmp.test_error_difference
    assert (d.n_baseline, d.n_treated, d.paired_seeds) == (2, 2, 2)


def test_seeds_needed_equal_statsmodels_on_the_same_numbers() -> None:
    a = [11.0, 11.4, 11.1, 10.8]
    b = [10.6, 10.9, 11.2, 10.5]
    d = difference(a, b, min_gain=0.25)
    sd = math.sqrt((np.var(a, ddof=1) * 3 + np.var(b, ddof=1) * 3) / 6)
    solve = TTestIndPower().solve_power
    want = math.ceil(solve(effect_size=(np.mean(a) - np.mean(b)) / sd, alpha=0.05, power=0.8))
    assert d.seeds_needed == want and want > 4 and d.underpowered is True
    assert d.seeds_needed_min_gain == math.ceil(solve(effect_size=0.25 / sd, alpha=0.05, power=0.8))
    big = difference([11.0, 11.1, 10.9], [5.0, 5.1, 4.9])
    assert big.seeds_needed == 2 and big.underpowered is False
    assert difference([1.0, 1.0], [1.0, 1.0]).seeds_needed is None  # no spread to size by


def confirm(db, nni_id: str, pairs: list[tuple[str, int, float]], start: int) -> None:
    name = confirmation_name("mlp4", "digits", ["s1"])
    with db.session_scope() as s:
        ingest_experiment(s, experiment(nni_id, results(pairs, start), name=name))


def test_a_pooled_confirmation_adjusts_p_for_its_looks_and_the_sentence_says_so(db) -> None:
    search = results([("none", 0, 11.0), ("3", 0, 9.0), ("3", 1, 9.5), ("none", 1, 11.5)])
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s1", search))
    first = [("none", 1000, 11.0), ("3", 1000, 9.1), ("none", 1001, 11.3), ("3", 1001, 9.4),
             ("none", 1002, 11.1), ("3", 1002, 9.0)]  # fmt: skip
    confirm(db, "c1", first, 100)
    with db.session_scope() as s:
        one = compare(s, G).test_error_difference
    assert one.looks == 1 and one.p_adjusted == one.p_welch
    with db.session_scope() as s:
        plan = confirmation_plan(s, G, n_seeds=2, extend="c1")
    # The same configurations as c1 over fresh seeds, confirming what c1 confirmed.
    assert plan.seeds == [1003, 1004] and plan.searches == ["s1"]
    assert sorted(c.layers for c in plan.configurations) == ["3", "none"]
    sets = plan.experiment["searchSpace"]["combine_params"]["_value"]
    tests = {("none", 1003): 11.2, ("3", 1003): 9.3, ("none", 1004): 10.9, ("3", 1004): 9.2}
    extension = [(p["layers"], p["seed"], tests[p["layers"], p["seed"]]) for p in sets]
    assert len(extension) == 4
    confirm(db, "c2", extension, 200)
    with db.session_scope() as s:
        cmp = compare(s, G)
    d = cmp.test_error_difference
    vanilla = [11.0, 11.3, 11.1, 11.2, 10.9]
    nsr = [9.1, 9.4, 9.0, 9.3, 9.2]
    assert (d.n_baseline, d.n_treated, d.looks) == (5, 5, 2)  # both runs' seeds pooled
    p = stats.ttest_ind(vanilla, nsr, equal_var=False).pvalue
    assert d.p_welch == pytest.approx(p) and d.p_adjusted == pytest.approx(min(1.0, 2 * p))
    assert cmp.summary.startswith("Use NSR on layer 3 with λ = 2:")
    assert "adjusted for 2 looks" in cmp.summary and "better on 5 of 5 shared seeds" in cmp.summary


def test_the_sentence_of_an_unresolved_verdict_says_how_many_seeds_would_resolve_it(db) -> None:
    search = results([("none", 0, 11.0), ("none", 1, 12.0), ("none", 2, 10.0),
                      ("3", 0, 10.8), ("3", 1, 11.9), ("3", 2, 10.1)])  # fmt: skip
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s1", search))
    with db.session_scope() as s:
        cmp = compare(s, G, min_gain=0.5)
    d = cmp.test_error_difference
    assert d.ci_low < 0 < d.ci_high and d.seeds_needed_min_gain is not None
    assert cmp.summary.startswith("No NSR configuration is better than vanilla with confidence")
    assert f"about {d.seeds_needed_min_gain} seeds per arm would resolve a 0.5-point gain" in (
        cmp.summary
    )
    assert "unconfirmed" in cmp.summary


def test_only_a_confirmation_of_the_group_can_be_extended(db) -> None:
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s1", results([("none", 0, 11.0), ("3", 0, 9.0)])))
    with db.session_scope() as s:
        with pytest.raises(InvalidValue, match="extend='s1' is a search experiment"):
            confirmation_plan(s, G, extend="s1")
        with pytest.raises(NotFound, match="unknown experiment 'nope'"):
            confirmation_plan(s, G, extend="nope")


def test_the_sentence_is_about_a_configuration_shown_better_when_the_lowest_validation_one_is_not(
    db,
) -> None:
    search = results([("none", 0, 11.0), ("3", 0, 9.0), ("4", 0, 9.5), ("none", 1, 11.5)])
    with db.session_scope() as s:
        ingest_experiment(s, experiment("s1", search))
    runs = []
    for i, seed in enumerate((1000, 1001, 1002)):
        runs += [
            trial(100 + 3 * i, "none", seed, 10.0, (11.0, 11.3, 11.1)[i]),
            # Layer 3: the lowest validation error, test errors too noisy to show a gain.
            trial(101 + 3 * i, "3", seed, 5.0, (10.0, 11.9, 10.6)[i], lam=2.0),
            # Layer 4: shown better on the test error.
            trial(102 + 3 * i, "4", seed, 6.0, (9.1, 9.2, 9.0)[i], lam=0.5),
        ]
    name = confirmation_name("mlp4", "digits", ["s1"])
    with db.session_scope() as s:
        ingest_experiment(s, experiment("c1", runs, name=name))
    with db.session_scope() as s:
        cmp = compare(s, G)
    assert cmp.nsr.layers == "3"  # lowest validation error
    layer4 = next(v for v in cmp.configurations if v.stats.layers == "4")
    assert cmp.summary.startswith("Use NSR on layer 4 with λ = 0.5:")
    assert cmp.summary_config_key == layer4.stats.config_key
