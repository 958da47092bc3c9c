"""The statistics behind a verdict, all from SciPy: baseline vs one configuration, test error.

- mean ± sample std and n of each group;
- the difference of means (baseline − configuration: > 0 means the configuration is better) with a
  95 % bootstrap confidence interval (``scipy.stats.bootstrap``, two independent samples, percentile
  method, 9,999 resamples, a fixed generator so the same rows give the same interval);
- Welch's t-test p-value (``scipy.stats.ttest_ind(equal_var=False)``, two-sided);
- where seeds match, the paired view: on how many shared seeds the configuration is better, and the
  paired t-test p-value (``scipy.stats.ttest_rel``).
- power (statsmodels' ``TTestIndPower``): the seeds per arm a two-sided t-test at α = 0.05 needs
  to detect the observed difference (and a user's ``min_gain``) with 80 % power, the effect size
  being the difference over the two sides' pooled sample std; a side with fewer seeds is
  "underpowered";
- pooled looks: a confirmation extended with more seeds after its verdict was seen is looked at
  more than once, and stopping when p dips below 0.05 inflates false positives. ``p_adjusted``
  is Welch's p times the number of looks (Bonferroni over the looks, capped at 1): its
  false-positive rate stays ≤ α however the looks were chosen, at the cost of power.
Fewer than two values on a side: no interval and no p-value (None), never a made-up number.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence

from storage.schemas import Difference

CONFIDENCE = 0.95
RESAMPLES = 9_999
BOOTSTRAP_SEED = 0
POWER = 0.8
ALPHA = 0.05
# Beyond this the answer is "more than any confirmation would run": said, not solved for.
MAX_SEEDS_NEEDED = 100_000


def seeds_for_power(gain: float | None, sd: float | None) -> int | None:
    """Seeds per arm for a two-sided t-test at ``ALPHA`` to detect ``gain`` with ``POWER``, for
    a pooled std ``sd`` (None: no gain or no spread to size it by)."""
    from statsmodels.stats.power import TTestIndPower

    if gain is None or sd is None or gain == 0 or not math.isfinite(gain) or sd <= 0:
        return None
    effect = abs(gain) / sd
    # solve_power brackets nobs; an effect this small needs more seeds than it searches.
    if effect < 0.02:
        return MAX_SEEDS_NEEDED
    with warnings.catch_warnings():  # a failed bracket is a NaN, handled below
        warnings.simplefilter("ignore")
        n = TTestIndPower().solve_power(effect_size=effect, alpha=ALPHA, power=POWER, ratio=1.0,
                                        alternative="two-sided")  # fmt: skip
    n = float(n)
    if not math.isfinite(n):  # an effect so large that the solver's bracket (n ≥ 2) overshoots
        return 2
    return min(MAX_SEEDS_NEEDED, max(2, math.ceil(n)))


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The pooled sample std of two sides (None: a side with fewer than two values)."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a), statistics.variance(b)
    return math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def difference(
    baseline: Sequence[float],
    treated: Sequence[float],
    baseline_seeds: Sequence[int | None] = (),
    treated_seeds: Sequence[int | None] = (),
    min_gain: float | None = None,
    looks: int = 1,
) -> Difference:
    """Baseline vs treated on one metric (lower is better); ``looks``: how many confirmation
    runs were pooled into these samples."""
    import numpy as np
    from scipy import stats

    a = np.asarray(baseline, dtype=float)
    b = np.asarray(treated, dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else None
    ci_low = ci_high = p_welch = None
    if len(a) >= 2 and len(b) >= 2:
        p_welch = _finite_or_none(stats.ttest_ind(a, b, equal_var=False).pvalue)
        if np.ptp(np.concatenate([a, b])) > 0:
            res = stats.bootstrap(
                (a, b),
                lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                vectorized=True,
                paired=False,
                confidence_level=CONFIDENCE,
                n_resamples=RESAMPLES,
                method="percentile",
                rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
            ci_low = _finite_or_none(res.confidence_interval.low)
            ci_high = _finite_or_none(res.confidence_interval.high)
        else:  # every value equal: the interval is that one point
            ci_low = ci_high = diff
    # Paired by seed: the first value of each seed on each side.
    by_seed_a = {s: v for s, v in zip(baseline_seeds, baseline, strict=False) if s is not None}
    by_seed_b = {s: v for s, v in zip(treated_seeds, treated, strict=False) if s is not None}
    shared = sorted(set(by_seed_a) & set(by_seed_b))
    wins = sum(1 for s in shared if by_seed_b[s] < by_seed_a[s])
    p_paired = None
    if len(shared) >= 2:
        pa = np.asarray([by_seed_a[s] for s in shared])
        pb = np.asarray([by_seed_b[s] for s in shared])
        if np.ptp(pa - pb) > 0:
            p_paired = _finite_or_none(stats.ttest_rel(pa, pb).pvalue)
    return Difference(
        baseline_mean=statistics.fmean(baseline) if len(a) else None,
        treated_mean=statistics.fmean(treated) if len(b) else None,
        difference=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=CONFIDENCE,
        p_welch=p_welch,
        n_baseline=len(a),
        n_treated=len(b),
        paired_seeds=len(shared),
        paired_wins=wins,
        p_paired=p_paired,
        seeds_needed=(needed := seeds_for_power(diff, sd := pooled_sd(baseline, treated))),
        min_gain=min_gain,
        seeds_needed_min_gain=seeds_for_power(min_gain, sd),
        underpowered=None if needed is None else min(len(a), len(b)) < needed,
        looks=looks,
        p_adjusted=None if p_welch is None else min(1.0, p_welch * looks),
    )
