"""NNI's multi-fidelity tuners (Hyperband, BOHB) hand a trial TRIAL_BUDGET: its epochs."""

from __future__ import annotations

import pytest

from trials import contract
from trials.mlp import MLPParams
from trials.params import TrialError, budget_as_epochs, merge


@pytest.mark.parametrize(
    ("budget", "epochs"),
    [(1, 1), (3, 3), (100, 100), (11.11, 12), (81 / 3**2, 9), (0.3, 1)],
)
def test_the_budget_becomes_the_epochs_whole_and_rounded_up(budget: float, epochs: int) -> None:
    params = {"layers": "4", "lambda_4": 2.0, contract.TRIAL_BUDGET: budget}
    overrides = budget_as_epochs(params)
    assert overrides == {"layers": "4", "lambda_4": 2.0, contract.EPOCHS: epochs}
    # ...and is a valid trial parameter: the budget wins over the command line's --epochs.
    p = merge(MLPParams, MLPParams(epochs=100), overrides, "NNI")
    assert p.epochs == epochs and p.lambda_4 == 2.0


def test_without_a_budget_the_parameters_pass_unchanged() -> None:
    assert budget_as_epochs({"seed": 1, "epochs": 7}) == {"seed": 1, "epochs": 7}


@pytest.mark.parametrize("bad", [0, -2, "ten", True, None, float("inf"), float("nan")])
def test_a_bad_budget_is_one_clear_error(bad: object) -> None:
    with pytest.raises(TrialError, match="TRIAL_BUDGET="):
        budget_as_epochs({contract.TRIAL_BUDGET: bad})


def test_an_unknown_key_is_still_an_error_beside_a_budget() -> None:
    with pytest.raises(TrialError, match="unknown parameter 'lamda_4'"):
        merge(MLPParams, MLPParams(), budget_as_epochs({"lamda_4": 1, "TRIAL_BUDGET": 3}), "NNI")
