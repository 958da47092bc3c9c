"""The test error is measured on the model of the best validation epoch, not the last one: the
test set never steers anything, and the reported test error belongs to the reported epoch.

Training is deterministic on a CPU, so a run stopped at the best epoch ``b`` of a longer run has
the very weights that run kept; its last-epoch test error is the one the longer run must report.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

from trials import contract
from trials.gnn import GNNParams
from trials.gnn import main as gnn_main
from trials.mlp import MLPParams
from trials.mlp import main as mlp_main


def quiet(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return run()


def test_mlp_test_error_is_the_best_validation_epochs() -> None:
    # lr 1.0 on digits: the validation error jumps about, so the best epoch is not the last.
    base = dict(dataset="digits", lr=1.0, batch_size=32, threads=1, probe_samples=100, seed=0)
    long = quiet(lambda: mlp_main(MLPParams(epochs=8, **base)))
    best = int(long[contract.BEST_EPOCH])
    assert best < 8
    short = quiet(lambda: mlp_main(MLPParams(epochs=best, **base)))
    assert short[contract.BEST_EPOCH] == best
    assert long[contract.TEST_ERROR] == short[contract.TEST_ERROR]
    assert long[contract.DEFAULT] == short[contract.DEFAULT]


def test_gnn_test_error_is_the_best_validation_epochs() -> None:
    base = dict(synthetic=200, lr=0.05, layers="none", seed=0, device="cpu", threads=1)
    long = quiet(lambda: gnn_main(GNNParams(epochs=30, **base)))
    best = int(long[contract.BEST_EPOCH])
    assert best < 30
    short = quiet(lambda: gnn_main(GNNParams(epochs=best, **base)))
    assert long[contract.TEST_ERROR] == short[contract.TEST_ERROR]
