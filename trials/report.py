"""Reporting a trial: to NNI inside an experiment, to the terminal outside, the same metrics.

The final dict follows trials/contract.py: flat numbers (``default`` = best validation error in %,
what the tuner minimizes; ``test_error`` at the best validation epoch; ``best_epoch``;
``epochs_run``; ``epoch_seconds``; ``var_<k>``, ``var_<k>_init``, ``varmean_<k>`` per regularizable
layer k) and one nested object, ``config``, the effective configuration the trial trained with.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trials import contract
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

    def final(self, metrics: Mapping[str, Any]) -> None:
        # Only the flat numbers can diverge; the nested config (strings, bools) passes through.
        bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            # NNI's JSON cannot carry NaN/inf; a diverged run still reports, with a clear marker.
            metrics = {k: (contract.NONFINITE_VALUE if k in bad else v) for k, v in metrics.items()}
            metrics = {**metrics, contract.NONFINITE: float(len(bad))}
        if self.nni_mode:
            import nni

            nni.report_final_result(dict(metrics))
        print(json.dumps(dict(metrics), indent=None if self.nni_mode else 2), flush=True)


def final_metrics(
    best_val_error: float,
    test_error: float,
    best_epoch: int,
    epochs_run: int,
    epoch_seconds: float,
    var_init: Mapping[int, LayerVariance],
    var_end: Mapping[int, LayerVariance],
    extra: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The flat numbers of the final report, under the contract's key names."""
    metrics: dict[str, Any] = {
        contract.DEFAULT: float(best_val_error),
        contract.TEST_ERROR: float(test_error),
        contract.BEST_EPOCH: int(best_epoch),
        contract.EPOCHS_RUN: int(epochs_run),
        contract.EPOCH_SECONDS: float(epoch_seconds),
    }
    for k in sorted(var_end):
        metrics[contract.var_key(k)] = var_end[k].total
        metrics[contract.var_init_key(k)] = var_init[k].total
        metrics[contract.varmean_key(k)] = var_end[k].mean
    metrics.update(extra or {})
    return metrics


def with_config(
    metrics: Mapping[str, Any], params: object, layers: list[int], entry: str
) -> dict[str, Any]:
    """``metrics`` plus the effective configuration (``contract.config_of``) of a trial whose
    parameters are the dataclass ``params`` and whose resolved regularized layers are ``layers``."""
    config = contract.config_of(dataclasses.asdict(params), layers, entry)  # type: ignore[arg-type]
    return {**metrics, contract.CONFIG: config}
