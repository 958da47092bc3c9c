"""Reporting a trial: to NNI inside an experiment, to the terminal outside, the same metrics.

The final dict is the contract with NNI and the results service (trials/contract.py):
``default`` = best validation error in % (what the tuner minimizes, never the test error),
``test_error`` at the best validation epoch, ``best_epoch`` (1-based), ``var_<k>`` and
``var_<k>_init`` for every regularizable layer k, ``epoch_seconds`` — all flat numbers.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from trials.nsr import LayerVariance
from trials.params import running_under_nni


@dataclass
class Reporter:
    """Sends per-epoch validation error and the final dict to NNI, or prints them."""

    nni_mode: bool = field(default_factory=running_under_nni)
    started: float = field(default_factory=time.perf_counter)

    def epoch(
        self, epoch: int, epochs: int, val_error: float, train_loss: float, seconds: float
    ) -> None:
        if self.nni_mode:
            import nni

            nni.report_intermediate_result(val_error)
        stream = sys.stdout if self.nni_mode else sys.stderr
        print(
            f"epoch {epoch:>3}/{epochs}  train loss {train_loss:.4f}  "
            f"val error {val_error:6.2f} %  ({seconds:.2f} s)",
            file=stream,
            flush=True,
        )

    def final(self, metrics: Mapping[str, float]) -> None:
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            # NNI's JSON cannot carry NaN/inf; a diverged run still reports, with a clear marker.
            metrics = {k: (1e9 if k in bad else v) for k, v in metrics.items()}
            metrics = {**metrics, "nonfinite": float(len(bad))}
        if self.nni_mode:
            import nni

            nni.report_final_result(dict(metrics))
        print(json.dumps(dict(metrics), indent=None if self.nni_mode else 2), flush=True)


def final_metrics(
    best_val_error: float,
    test_error: float,
    best_epoch: int,
    epoch_seconds: float,
    var_init: Mapping[int, LayerVariance],
    var_end: Mapping[int, LayerVariance],
    extra: Mapping[str, float] | None = None,
) -> dict[str, float]:
    metrics: dict[str, float] = {
        "default": float(best_val_error),
        "test_error": float(test_error),
        "best_epoch": int(best_epoch),
        "epoch_seconds": float(epoch_seconds),
    }
    for k in sorted(var_end):
        metrics[f"var_{k}"] = var_end[k].total
        metrics[f"var_{k}_init"] = var_init[k].total
        metrics[f"varmean_{k}"] = var_end[k].mean
    metrics.update(extra or {})
    return metrics
