"""The trial contract's shared rules: nested choices, command <-> flags, what took effect."""

from __future__ import annotations

import time

import pytest

from trials import contract
from trials.contract import ContractError


def test_nested_choices_flatten_at_any_depth() -> None:
    nested = {"regularizer": {"_name": "nsr", "layers": {"_name": "3,4", "lambda_3": 2.0},
                              "lambda_4": 0.5}, "seed": 1}  # fmt: skip
    flat = {"regularizer": "nsr", "layers": "3,4", "lambda_3": 2.0, "lambda_4": 0.5, "seed": 1}
    assert contract.flatten_nested(nested, strict=True) == flat
    assert contract.flatten_nested(nested, strict=False) == flat


def test_a_key_set_twice_is_an_error_when_strict_and_the_branchs_value_when_lenient() -> None:
    twice = {"layers": "4", "regularizer": {"_name": "nsr", "layers": "3"}}
    with pytest.raises(ContractError, match="'layers' is set twice"):
        contract.flatten_nested(twice, strict=True)
    assert contract.flatten_nested(twice, strict=False)["layers"] == "3"


def test_entry_command_and_parse_command_are_inverse() -> None:
    params = {"model": "mlp4", "dataset": "digits", "layers": "3,4", "lambda_3": 2.5, "seed": 7}
    command = contract.entry_command("mlp", params)
    assert command.startswith("python -m trials.mlp --model mlp4")
    parsed = contract.parse_command(command)
    assert parsed == {"entry": "mlp", **{k: str(v) for k, v in params.items()}}


def test_the_warm_launcher_command_parses_as_the_cold_one() -> None:
    params = {"model": "mlp4", "dataset": "digits", "layers": "4", "lambda_4": 7.5, "seed": 1}
    warm = contract.entry_command("mlp", params, warm=True)
    assert warm.startswith("python -m trials.warm mlp --model mlp4")
    assert contract.parse_command(warm) == contract.parse_command(
        contract.entry_command("mlp", params)
    )
    assert contract.parse_command(warm)["entry"] == "mlp"
    assert contract.command_entry(["-m", "trials.warm"]) is None
    assert contract.command_entry(["-m", "trials.warm", "--model"]) is None
    assert contract.command_entry(["-m", "trials.cnn"]) == "cnn"


def test_parse_command_is_bounded_before_parsing() -> None:
    huge = "python -m trials.mlp --model " + "x" * 900_000
    t0 = time.process_time()
    assert contract.parse_command(huge) == {}
    assert contract.parse_command("a '" + "y" * (contract.MAX_COMMAND_CHARS - 10)) is not None
    # Compared with the bound, not a clock: one linear scan at most.
    assert time.process_time() - t0 < 5.0
    many = "python -m trials.mlp " + " ".join(f"--k{i} {i}" for i in range(1000))
    assert len(many) < contract.MAX_COMMAND_CHARS
    parsed = contract.parse_command(many)
    assert len(parsed) == contract.MAX_COMMAND_FLAGS and parsed["entry"] == "mlp"


def test_effective_strengths_reads_the_effective_config() -> None:
    # A nested-choice search's parameters, and a search whose command fixed --layers 4: the
    # effective configuration names the layers; the λ of other layers had no effect.
    nested = {"regularizer": {"_name": "nsr", "layers": "3", "lambda_3": 2.0}, "lambda_4": 9.0}
    assert contract.effective_strengths(nested).lambdas == {3: 2.0}
    fixed = {"entry": "mlp", "layers": "4", "lambda_4": 0.3, "lambda_3": 5.0, "seed": 2}
    got = contract.effective_strengths(fixed)
    assert (got.family, got.lambdas, got.strength) == ("nsr", {4: 0.3}, None)
    l2 = contract.effective_strengths({"regularizer": "l2", "layers": "none", "l2_weight": 1e-4,
                                       "lambda_4": 3.0, "epochs": 15})  # fmt: skip
    assert (l2.family, l2.lambdas, l2.strength, l2.other) == ("l2", {}, 1e-4, {"epochs": 15})
    assert contract.effective_strengths({"layers": "last"}).family == "unknown"
    assert contract.effective_strengths({"layers": "none"}).family == "vanilla"
