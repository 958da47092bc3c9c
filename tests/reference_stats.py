"""The statistics the verdict tests expect, computed here with SciPy directly so that they check
analysis/statistics.py against an independent call rather than against itself."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def bootstrap_ci(baseline: Sequence[float], treated: Sequence[float]) -> tuple[float, float]:
    """95 % percentile bootstrap interval of mean(baseline) − mean(treated): 9999 resamples from
    seed 0, the settings the verdict promises."""
    boot = stats.bootstrap(
        (np.array(baseline), np.array(treated)),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        vectorized=True,
        n_resamples=9999,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    return boot.confidence_interval.low, boot.confidence_interval.high
