"""The verdict of a (model, data set, budget) group: vanilla against NSR and every other
regularizer family, from confirmation runs over fresh seeds when they exist."""

from __future__ import annotations

from dataclasses import replace

from analysis.best import answer_fields, winners_curse
from analysis.statistics import difference
from analysis.summary import verdict_sentence
from storage.db import Session
from storage.queries import (
    Group,
    confirmation_trials,
    group_stats,
    list_families,
    ranked_configs,
    resolve_budget,
    search_trials,
)
from storage.schemas import Comparison, ConfigVerdict, Difference, GroupStats


def versus(
    baseline: GroupStats | None, stats: GroupStats, min_gain: float | None = None, looks: int = 1
) -> Difference | None:
    """Test error of ``baseline`` against ``stats`` (None: no baseline, the same configuration,
    or a side without test errors)."""
    if baseline is None or stats.config_key == baseline.config_key:
        return None
    if not baseline.test_errors or not stats.test_errors:
        return None
    return difference(
        baseline.test_errors, stats.test_errors, baseline.test_error_seeds,
        stats.test_error_seeds, min_gain=min_gain, looks=looks,
    )  # fmt: skip


def compare(session: Session, group: Group, min_gain: float | None = None) -> Comparison:
    """Vanilla vs NSR (and every other regularizer family) in one (model, data set, budget):
    from confirmation runs over fresh seeds when they exist, else from the search (unconfirmed,
    with the winner's-curse caveat); mean ± std, bootstrap CI and p-values from SciPy, the seeds
    needed for 80 % power (for the observed gain and for ``min_gain``), and the sentence."""
    choice = resolve_budget(session, group)
    budget = choice.budget
    confirm = confirmation_trials(group, budget)
    confirmed_keys = ranked_configs(session, confirm)
    confirmed = bool(confirmed_keys)
    trials = confirm if confirmed else search_trials(group, budget)
    vanilla_keys = ranked_configs(session, replace(trials, family="vanilla"))
    vanilla = (
        group_stats(session, replace(trials, config_key=vanilla_keys[0]))
        if vanilla_keys else None
    )  # fmt: skip
    if confirmed:
        keys = [k for k in confirmed_keys if k not in vanilla_keys]
    else:
        # Unconfirmed: the best configuration of each regularizer family.
        families = [f for f in list_families(session, trials) if f not in ("vanilla", "unknown")]
        ranked = [ranked_configs(session, replace(trials, family=f)) for f in families]
        keys = [ks[0] for ks in ranked if ks]
    verdicts = []
    for key in keys:
        stats = group_stats(session, replace(trials, config_key=key))
        if stats is not None:
            looks = _looks(vanilla, stats) if confirmed else 1
            verdicts.append(ConfigVerdict(
                stats=stats, versus_vanilla=versus(vanilla, stats, min_gain, looks),
                versus_nsr=None,
            ))  # fmt: skip
    verdicts.sort(key=lambda v: (v.stats.val_error_mean, v.stats.config_key))
    nsr = next((v for v in verdicts if v.stats.family == "nsr"), None)
    if nsr is not None:  # every other family against the best NSR configuration (Table 4)
        for v in verdicts:
            if v.stats.family != "nsr":
                looks = _looks(nsr.stats, v.stats) if confirmed else 1
                v.versus_nsr = versus(nsr.stats, v.stats, min_gain, looks)
    val_gain = test_gain = None
    if vanilla and nsr:
        val_gain = vanilla.val_error_mean - nsr.stats.val_error_mean
        if vanilla.test_error_mean is not None and nsr.stats.test_error_mean is not None:
            test_gain = vanilla.test_error_mean - nsr.stats.test_error_mean
    experiments = sorted({e for v in verdicts for e in v.stats.experiments}) if confirmed else []
    comparison = Comparison(
        **answer_fields(group, choice),
        summary="",
        summary_config_key=None,
        confirmed=confirmed,
        confirmation_experiments=experiments,
        caveat=None if confirmed else winners_curse(group),
        vanilla=vanilla,
        nsr=nsr.stats if nsr else None,
        configurations=verdicts,
        val_error_gain=val_gain,
        test_error_gain=test_gain,
        test_error_difference=nsr.versus_vanilla if nsr else None,
        min_gain=min_gain,
    )
    comparison.summary, comparison.summary_config_key = verdict_sentence(comparison)
    return comparison


def _looks(a: GroupStats | None, b: GroupStats) -> int:
    """How many confirmation runs a verdict pools: each one added after seeing the last verdict
    (an extension) is another look at the p-value."""
    return max(len(a.experiments) if a else 0, len(b.experiments), 1)
