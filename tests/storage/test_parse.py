from __future__ import annotations

import json

import pytest

from storage.nni.records import RawTrial
from storage.parse import (
    config_key,
    decode_metric,
    full_budget_epochs,
    parse_layers,
    parse_trial,
)
from storage.schemas import confirmation_name, confirmed_searches
from trials.contract import parse_command as parse_trial_command

CMD = parse_trial_command("python -m trials.mlp --model mlp4 --dataset digits --epochs 15 --lr 0.1")


def nni_text(value):
    """How NNI stores a metric: a JSON string holding the trial's JSON."""
    return json.dumps(json.dumps(value))


def raw(params, final=None, status="SUCCEEDED", intermediate=()):
    return RawTrial("T1", status, 0, params, 1, 2, final, [nni_text(v) for v in intermediate])


def test_trial_command_flags_in_both_forms():
    flags = parse_trial_command(
        "python -m trials.mlp --model=mlp6 --dataset 'fashion mnist' --seed 3 --lambda-4 2 --x"
    )
    assert flags == {"entry": "mlp", "model": "mlp6", "dataset": "fashion mnist", "seed": "3",
                     "lambda_4": "2"}  # fmt: skip
    assert parse_trial_command("python x.py") == {}
    trial, _ = parse_trial(raw({"layers": "4"}), parse_trial_command("x --seed notanint"))
    assert trial["seed"] is None


@pytest.mark.parametrize("layers,expected", [
    ("none", ("none", [])), ("4", ("4", [4])), ("4, 3", ("3,4", [3, 4])), (3, ("3", [3])),
    ("conv1", ("conv1", None)), ("0", ("0", None)), ("last", ("last", None)), (None, ("none", [])),
])  # fmt: skip
def test_parse_layers(layers, expected):
    assert parse_layers(layers) == expected


def test_decode_metric_single_and_double_encoded():
    assert decode_metric(nni_text({"default": 1.5})) == {"default": 1.5}
    assert decode_metric(json.dumps({"default": 1.5})) == {"default": 1.5}
    assert decode_metric(nni_text(2.5)) == 2.5
    assert decode_metric("not json") == "not json"


def test_contract_final_dict_gives_columns_and_layer_rows():
    params = {"layers": "3,4", "lambda_2": 9.0, "lambda_3": 0.5, "lambda_4": 7.4, "lr": 0.1}
    final = {"default": 2.0, "test_error": 2.5, "best_epoch": 4, "epoch_seconds": 0.3,
             "var_2": 20.0, "var_2_init": 21.0, "var_3": 30.0, "var_3_init": 31.0,
             "var_4": 40.0, "var_4_init": 41.0, "note": "text is dropped"}  # fmt: skip
    trial, layers = parse_trial(raw(params, nni_text(final), intermediate=[5.0, 2.0]), CMD)
    assert (trial["val_error"], trial["test_error"], trial["best_epoch"]) == (2.0, 2.5, 4)
    assert trial["seed"] is None  # absent everywhere: unknown, not a made-up 0
    assert trial["budget"] == "epochs=15 lr=0.1" and trial["config_source"] == "parameters"
    assert trial["model"] == "mlp4" and trial["dataset"] == "digits"
    assert trial["family"] == "nsr" and trial["n_layers"] == 2 and trial["layers"] == "3,4"
    assert trial["parameters"]["lr"] == 0.1  # unknown keys are kept
    assert "note" not in trial["final_metrics"] and trial["final_metrics"]["var_4"] == 40.0
    assert trial["intermediate"] == [5.0, 2.0]
    assert trial["final_raw"] is None
    # lambda_2 is ignored: layer 2 is not in "layers", so its effective λ is 0.
    assert [(r["layer"], r["lam"], r["var_init"], r["var_end"]) for r in layers] == [
        (2, 0.0, 21.0, 20.0), (3, 0.5, 31.0, 30.0), (4, 7.4, 41.0, 40.0)]  # fmt: skip


def test_parameters_win_over_trial_command_and_seed_comes_from_command():
    cmd = parse_trial_command("python -m trials.mlp --model mlp4 --dataset digits --seed 7")
    trial, _ = parse_trial(raw({"layers": "none", "model": "mlp6", "dataset": "mnist"}), cmd)
    assert (trial["model"], trial["dataset"], trial["seed"]) == ("mlp6", "mnist", 7)
    assert trial["family"] == "vanilla"
    trial, _ = parse_trial(raw({"layers": "none", "seed": 2}), cmd)
    assert trial["seed"] == 2


def test_off_contract_finals_are_kept_not_dropped():
    bare, _ = parse_trial(raw({"layers": "4"}, nni_text(3.25)), CMD)
    assert bare["final_raw"] == nni_text(3.25) and bare["val_error"] == 3.25
    missing, _ = parse_trial(raw({"layers": "4"}, None, status="FAILED"), CMD)
    assert missing["status"] == "FAILED" and missing["val_error"] is None
    assert missing["final_metrics"] is None and missing["final_raw"] is None
    nodefault, _ = parse_trial(raw({"layers": "4"}, nni_text({"test_error": 1.0})), CMD)
    assert nodefault["val_error"] is None and nodefault["final_raw"] is not None
    junk, _ = parse_trial(raw({"layers": "4"}, "{broken"), CMD)
    assert junk["final_raw"] == "{broken" and junk["val_error"] is None
    nan, _ = parse_trial(raw({"layers": "4"}, nni_text({"default": float("nan")})), CMD)
    assert nan["val_error"] is None


def test_config_key_ignores_seed_and_ineffective_lambdas():
    a = {"layers": "4", "lambda_3": 1.0, "lambda_4": 2.0, "seed": 0}
    b = {"layers": "4", "lambda_3": 99.0, "lambda_4": 2.0, "seed": 1}
    c = {"layers": "4", "lambda_3": 1.0, "lambda_4": 3.0, "seed": 0}
    assert config_key(a) == config_key(b) != config_key(c)
    assert config_key({"layers": "none", "lambda_4": 1.0}) == config_key({"layers": "none"})


def test_layers_fixed_in_the_command_are_nsr_not_vanilla():
    """A search that fixes --layers 4 and searches only lambda_4 is NSR on layer 4."""
    cmd = parse_trial_command("python -m trials.mlp --model mlp4 --dataset digits --layers 4")
    trial, rows = parse_trial(raw({"lambda_4": 3.0, "seed": 1}), cmd)
    assert (trial["family"], trial["layers"]) == ("nsr", "4")
    assert [(r["layer"], r["lam"]) for r in rows] == [(4, 3.0)]
    # Nothing anywhere says which layers: unknown, never "vanilla".
    trial, _ = parse_trial(raw({"lambda_4": 3.0}), parse_trial_command("python my_trial.py"))
    assert trial["family"] == "unknown" and trial["config_source"] == "parameters"


def test_reported_config_wins_over_parameters_and_command():
    cmd = parse_trial_command("python -m trials.mlp --model mlp4 --dataset digits --epochs 15")
    config = {"entry": "mlp", "model": "mlp4", "dataset": "digits", "layers": "3",
              "lambda_3": 2.5, "seed": 4, "epochs": 15, "lr": 0.1, "batch_size": 32}
    final = {"default": 3.0, "test_error": 3.5, "config": config}
    # NNI's record says vanilla (a neighbour's set); the trial says what it trained with.
    trial, rows = parse_trial(raw({"layers": "none", "seed": 0}, nni_text(final)), cmd)
    assert trial["config_source"] == "report" and trial["config"] == config
    assert (trial["family"], trial["layers"], trial["seed"]) == ("nsr", "3", 4)
    assert trial["budget"] == "epochs=15 lr=0.1 batch_size=32"
    assert [(r["layer"], r["lam"]) for r in rows] == [(3, 2.5)]
    assert "config" not in trial["final_metrics"]  # numbers only; the config has its column


def test_budget_is_part_of_the_configuration_identity():
    base = {"entry": "mlp", "layers": "4", "lambda_4": 2.0, "epochs": 15, "lr": 0.1}
    assert config_key(base) != config_key({**base, "epochs": 100})
    assert config_key(base) == config_key({**base, "seed": 9, "threads": 1, "data_root": "/x"})
    # A flag's text and a report's number are the same configuration.
    assert config_key({**base, "epochs": "15", "lr": "0.1"}) == config_key(base)


def test_early_stopped_trial_is_partial_with_its_best_so_far():
    trial, _ = parse_trial(raw({"layers": "4"}, None, "EARLY_STOPPED", [9.0, 7.0, 8.0]), CMD)
    assert trial["partial"] and trial["val_error"] == 7.0 and trial["epochs_run"] == 3
    full = {"default": 2.0, "epochs_run": 15}
    done, _ = parse_trial(raw({"layers": "4"}, nni_text(full)), CMD)
    assert not done["partial"]
    short, _ = parse_trial(raw({"layers": "4"}, nni_text({**full, "epochs_run": 5})), CMD)
    assert short["partial"]  # fewer epochs than the budget's 15


def test_confirmation_experiments_are_recognised_by_name():
    name = confirmation_name("mlp4", "digits", ["abc123", "xyz789"])
    assert confirmed_searches(name) == ["abc123", "xyz789"]
    assert confirmed_searches("nsr-quickstart-mlp4-digits") is None
    assert confirmed_searches(None) is None


@pytest.mark.parametrize("config,expected", [
    ({"advisor": {"name": "Hyperband", "classArgs": {"R": 27, "eta": 3}}}, 27.0),
    ({"advisor": {"className": "advisors.hyperband.Hyperband", "classArgs": {"R": 100}}}, 100.0),
    ({"tuner": {"name": "BOHB", "classArgs": {"max_budget": 9}}}, 9.0),
    ({"advisor": {"builtinAdvisorName": "Hyperband", "classArgs": {"R": 81}}}, 81.0),  # v1
    ({"tuner": {"name": "Random", "classArgs": {"R": 27}}}, None),
    ({"advisor": {"name": "Hyperband", "classArgs": {"R": "x"}}}, None),
    ({"advisor": {"name": "Hyperband", "classArgs": {"R": -3}}}, None),
    ({"advisor": {"name": "Hyperband"}}, None),
    ({}, None),
])  # fmt: skip
def test_full_budget_of_a_multi_fidelity_search(config, expected):
    assert full_budget_epochs(config) == expected


def test_hyperband_short_budget_trials_are_partial_at_the_search_budget():
    """Hyperband's 1-epoch trial of a 27-epoch search is that search's partial result, like an
    early-stopped trial: same budget and configuration key as the 27-epoch trial of the same
    configuration, ranked only when asked; its own config still says what ran."""

    def hyperband_trial(epochs):
        config = {"entry": "mlp", "model": "mlp4", "dataset": "digits", "layers": "3",
                  "lambda_3": 2.0, "seed": 0, "epochs": epochs, "lr": 0.05, "batch_size": 100}
        final = {"default": 20.0 - epochs / 10, "epochs_run": epochs, "config": config}
        return raw({"layers": "3", "lambda_3": 2.0, "TRIAL_BUDGET": epochs}, nni_text(final))

    short, _ = parse_trial(hyperband_trial(1), CMD, full_epochs=27.0)
    full, _ = parse_trial(hyperband_trial(27), CMD, full_epochs=27.0)
    assert short["partial"] is True and short["epochs_run"] == 1
    assert short["config"]["epochs"] == 1
    assert full["partial"] is False and full["epochs_run"] == 27
    assert short["budget"] == full["budget"] == "epochs=27 lr=0.05 batch_size=100"
    assert short["config_key"] == full["config_key"]
    # Outside a multi-fidelity search, a 1-epoch trial is a full result of its own 1-epoch budget.
    alone, _ = parse_trial(hyperband_trial(1), CMD)
    assert alone["partial"] is False and alone["budget"] == "epochs=1 lr=0.05 batch_size=100"
