"""The trial↔storage contract end to end: a real trial's final report, as NNI stores it, read
back by storage's parser into the columns every answer ranks on."""

from __future__ import annotations

import json

from storage.nni.records import RawTrial
from storage.parse import parse_trial
from trials import contract
from trials.contract import parse_command as parse_trial_command
from trials.mlp import MLPParams, main

TINY = dict(dataset="digits", epochs=2, lr=0.1, batch_size=32, threads=1, probe_samples=200)


def nni_text(value: object) -> str:
    return json.dumps(json.dumps(value))  # how NNI 3.0 stores a metric


def test_a_real_trial_report_through_the_storage_parser() -> None:
    report = main(MLPParams(layers="3", lambda_3=0.7, lambda_4=55.0, seed=4, **TINY))
    # NNI's record of the trial: a neighbour's vanilla set (the concurrency swap), and a command
    # that names only the model; the trial's own report must win.
    command = parse_trial_command("python -m trials.mlp --model mlp4 --dataset digits")
    raw = RawTrial("T1", "SUCCEEDED", 0, {"layers": "none", "seed": 0}, 1, 2, nni_text(report),
                   [nni_text(e) for e in (30.0, 20.0)])  # fmt: skip
    row, layers = parse_trial(raw, command)
    assert row["config_source"] == "report" and row["config"] == report[contract.CONFIG]
    assert (row["family"], row["layers"], row["n_layers"], row["seed"]) == ("nsr", "3", 1, 4)
    assert (row["model"], row["dataset"]) == ("mlp4", "digits")
    assert row["budget"] == "epochs=2 lr=0.1 batch_size=32"
    assert row["val_error"] == report[contract.DEFAULT]
    assert row["test_error"] == report[contract.TEST_ERROR]
    assert row["best_epoch"] == report[contract.BEST_EPOCH]
    assert row["epochs_run"] == 2 and not row["partial"]
    lam = {r["layer"]: r["lam"] for r in layers}
    assert lam == {2: 0.0, 3: 0.7, 4: 0.0}  # λ4 = 55 never took effect
    var = {r["layer"]: (r["var_init"], r["var_end"]) for r in layers}
    for k in (2, 3, 4):
        assert var[k] == (report[contract.var_init_key(k)], report[contract.var_key(k)])
    # The same configuration on another seed has the same identity; another budget does not.
    other_seed = main(MLPParams(layers="3", lambda_3=0.7, seed=5, **{**TINY, "epochs": 1}))
    raw2 = RawTrial("T2", "SUCCEEDED", 1, {}, 1, 2, nni_text(other_seed), [])
    row2, _ = parse_trial(raw2, command)
    assert row2["budget"] == "epochs=1 lr=0.1 batch_size=32"
    assert row2["config_key"] != row["config_key"]
    config_same_budget = {**other_seed[contract.CONFIG], "epochs": 2}
    raw3 = RawTrial("T3", "SUCCEEDED", 2, {}, 1, 2,
                    nni_text({**other_seed, contract.CONFIG: config_same_budget}), [])  # fmt: skip
    assert parse_trial(raw3, command)[0]["config_key"] == row["config_key"]
