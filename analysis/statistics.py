"""The statistics behind a verdict, all from SciPy: baseline vs one configuration, test error.

- mean ± sample std and n of each group;
- the difference of means (baseline − configuration: > 0 means the configuration is better) with a
  95 % bootstrap confidence interval (``scipy.stats.bootstrap``, two independent samples, percentile
  method, 9,999 resamples, a fixed generator so the same rows give the same interval);
- Welch's t-test p-value (``scipy.stats.ttest_ind(equal_var=False)``, two-sided);
- where seeds match, the paired view: on how many shared seeds the configuration is better, and the
  paired t-test p-value (``scipy.stats.ttest_rel``).
Fewer than two values on a side: no interval and no p-value (None), never a made-up number.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from storage.schemas import Difference

CONFIDENCE = 0.95
RESAMPLES = 9_999
BOOTSTRAP_SEED = 0


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def difference(
    baseline: Sequence[float],
    treated: Sequence[float],
    baseline_seeds: Sequence[int | None] = (),
    treated_seeds: Sequence[int | None] = (),
) -> Difference:
    """Baseline vs treated on one metric (lower is better)."""
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
    )
