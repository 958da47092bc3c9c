"""Trials report what they trained with: the final report's ``config`` (trials/contract.py)."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from nni_runner import REPO, NNIExperiment, free_port, tiny_config

from trials import contract
from trials.mlp import MLPParams, main
from trials.params import TrialError, flatten_nested, from_cli, merge
from trials.report import Reporter

TINY = dict(dataset="digits", epochs=2, lr=0.1, batch_size=32, threads=1, probe_samples=200)


def test_a_real_mlp_trial_reports_its_effective_config() -> None:
    result = main(MLPParams(layers="last", lambda_4=2.5, lambda_3=9.0, seed=3, **TINY))
    config = result[contract.CONFIG]
    # 'last' is resolved to the model's layer; only the λ that took effect is reported.
    assert config[contract.LAYERS] == "4"
    assert config["lambda_4"] == 2.5
    assert not any(contract.LAMBDA_KEY.match(k) and k != "lambda_4" for k in config)
    assert config[contract.ENTRY] == "mlp"
    assert (config["model"], config["dataset"], config["seed"]) == ("mlp4", "digits", 3)
    assert (config["epochs"], config["lr"], config["batch_size"]) == (2, 0.1, 32)
    assert config["queue_batches"] == 5 and config["split_seed"] == 0
    # Runtime knobs change speed, never the result: they stay out of the configuration.
    assert not contract.RUNTIME_KEYS & config.keys()
    assert result[contract.EPOCHS_RUN] == 2 and 1 <= result[contract.BEST_EPOCH] <= 2
    # Everything is JSON-safe, as NNI must carry it.
    assert json.loads(json.dumps(result)) == result


def test_a_vanilla_trial_reports_no_lambda() -> None:
    config = main(MLPParams(layers="none", **{**TINY, "epochs": 1}))[contract.CONFIG]
    assert config[contract.LAYERS] == "none"
    assert not any(contract.LAMBDA_KEY.match(k) for k in config)


def test_reporter_keeps_the_nested_config_and_marks_nonfinite_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = {"entry": "mlp", "layers": "4", "batchnorm": False, "lambda_4": 1.0}
    Reporter(nni_mode=False).final({"default": math.nan, "test_error": 3.0, "config": config})
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"] == config
    assert printed["default"] == contract.NONFINITE_VALUE and printed["nonfinite"] == 1.0


def test_nested_choice_is_flattened_and_conflicts_are_named() -> None:
    nested = {"regularizer": {"_name": "nsr", "layers": "3,4", "lambda_3": 0.5}, "seed": 2}
    flat = flatten_nested(nested, "NNI's search space")
    assert flat == {"regularizer": "nsr", "layers": "3,4", "lambda_3": 0.5, "seed": 2}
    with pytest.raises(TrialError, match="'layers' is set twice"):
        merge(MLPParams, MLPParams(), {"layers": "4", "r": {"_name": "x", "layers": "3"}}, "NNI")


def test_cli_layers_fixed_and_lambda_searched_gives_layer_4() -> None:
    # What an NNI trial of such a search does: the command's flags, then NNI's parameters.
    argv = shlex.split("--model mlp4 --dataset digits --layers 4 --epochs 1 --threads 1")
    p = merge(MLPParams, from_cli(MLPParams, argv, "t", ""), {"lambda_4": 3.0}, "NNI")
    config = main(p)[contract.CONFIG]
    assert config[contract.LAYERS] == "4" and config["lambda_4"] == 3.0


def test_cli_prints_the_config() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "trials.mlp",
            "--epochs",
            "1",
            "--layers",
            "3,4",
            "--probe-samples",
            "100",
            "--threads",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[contract.CONFIG][contract.LAYERS] == "3,4"


@pytest.mark.nni
def test_nni_search_with_layers_fixed_in_the_command_reports_layer_4(tmp_path: Path) -> None:
    config = tiny_config(max_trials=1, epochs=1, concurrency=1)
    config["searchSpace"] = {"lambda_4": {"_type": "loguniform", "_value": [0.01, 100]}}
    config["trialCommand"] += " --layers 4"
    exp = NNIExperiment(home=tmp_path, port=free_port())
    exp.create(config)
    try:
        exp.wait(timeout=240)
        assert [t["status"] for t in exp.trials] == ["SUCCEEDED"], exp.trial_log(
            exp.trials[0]["trialJobId"]
        )
        finals = [m for m in exp.metrics if m["type"] == "FINAL"]
        data = json.loads(finals[0]["data"])
        final = json.loads(data) if isinstance(data, str) else data
        assert final[contract.CONFIG][contract.LAYERS] == "4"
        assert set(final[contract.CONFIG]) & {"lambda_2", "lambda_3"} == set()
    finally:
        exp.stop()
    # Stored as NSR on layer 4 (before the contract, such a search was stored as vanilla).
    from analysis.best import best_lambda_per_layer
    from storage.db import Database
    from storage.queries import Group, list_trials
    from storage.sync import ingest_sqlite_file

    db = Database(f"sqlite:///{tmp_path / 'results.sqlite'}")
    db.migrate()
    ingest_sqlite_file(db, exp.sqlite_path)
    with db.session_scope() as s:
        [trial] = list_trials(s).items
        lams = best_lambda_per_layer(s, Group("mlp4", "digits"))
    assert (trial.family, trial.layers, trial.config_source) == ("nsr", "4", "report")
    assert [r.layer for r in lams.layers] == [4]
    assert lams.layers[0].lam == final[contract.CONFIG]["lambda_4"]
    db.dispose()
