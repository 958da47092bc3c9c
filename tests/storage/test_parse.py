from __future__ import annotations

import json

import pytest

from storage.nni_reader import RawTrial
from storage.parse import (
    CommandInfo,
    config_key,
    decode_metric,
    parse_layers,
    parse_trial,
    parse_trial_command,
)

CMD = CommandInfo(model="mlp4", dataset="digits", seed=None)


def nni_text(value):
    """How NNI stores a metric: a JSON string holding the trial's JSON."""
    return json.dumps(json.dumps(value))


def raw(params, final=None, status="SUCCEEDED", intermediate=()):
    return RawTrial("T1", status, 0, params, 1, 2, final, [nni_text(v) for v in intermediate])


def test_trial_command_flags_in_both_forms():
    info = parse_trial_command(
        "python -m trials.mlp --model=mlp6 --dataset 'fashion mnist' --seed 3"
    )
    assert (info.model, info.dataset, info.seed) == ("mlp6", "fashion mnist", 3)
    assert parse_trial_command("python x.py") == CommandInfo()
    assert parse_trial_command("python x.py --seed notanint").seed is None


@pytest.mark.parametrize("layers,expected", [
    ("none", ("none", [])), ("4", ("4", [4])), ("4, 3", ("3,4", [3, 4])), (3, ("3", [3])),
    ("conv1", ("conv1", None)), ("0", ("0", None)),
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
    assert trial["seed"] == 0  # absent everywhere: default 0
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
    cmd = CommandInfo(model="mlp4", dataset="digits", seed=7)
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
