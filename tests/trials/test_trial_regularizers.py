"""MLP, CNN and GNN trials run with every regularizer (and the MLP with batch norm and dropout),
report it in their configuration, and refuse bad regularizer input in one line with exit 2."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess

import pytest
from nni_runner import REPO
from trial_cli import run_module

from trials import cnn, contract, gnn, mlp
from trials.params import merge

BASELINES = ["l1", "l2", "jacobian", "vcl", "none", "nsr"]
# Runs small enough for 2 shared CPU cores; each test sets what it checks on top.
MLP_SMALL = mlp.MLPParams(
    dataset="digits", epochs=1, lr=0.1, batch_size=32, threads=1, probe_samples=200
)
CNN_SMOKE = cnn.CNNParams(
    synthetic=30, max_batches=2, batch_size=4, eval_batch=8, epochs=1, device="cpu", threads=2
)


def check(result: dict, kind: str) -> dict:
    config = result[contract.CONFIG]
    assert config[contract.REGULARIZER] == kind
    strength = contract.STRENGTH_KEYS.get(kind)
    # Only the active family's strength is in the configuration.
    assert {k for k in contract.STRENGTH_KEYS.values() if k in config} == (
        {strength} if strength else set()
    )
    assert math.isfinite(result[contract.DEFAULT]) and result[contract.EPOCHS_RUN] >= 1
    return config


@pytest.mark.parametrize("kind", BASELINES)
def test_mlp_trial_with_every_regularizer(kind: str) -> None:
    p = dataclasses.replace(MLP_SMALL, regularizer=kind, layers="last")
    result = mlp.main(p)
    config = check(result, kind)
    assert config[contract.LAYERS] == ("4" if kind in contract.LAYERED else "none")
    # The regularizer took part in training: the same seed trains differently than vanilla.
    vanilla = mlp.main(dataclasses.replace(p, regularizer="none"))
    assert (result["var_4"] == vanilla["var_4"]) == (kind == "none")


@pytest.mark.parametrize(("batchnorm", "dropout"), [(True, 0.0), (False, 0.3), (True, 0.3)])
def test_mlp_trial_with_batchnorm_and_dropout_and_nsr(batchnorm: bool, dropout: float) -> None:
    p = dataclasses.replace(
        MLP_SMALL, epochs=2, layers="4", lambda_4=2.0, batchnorm=batchnorm, dropout=dropout
    )
    result = mlp.main(p)
    config = check(result, "nsr")
    assert (config["batchnorm"], config["dropout"]) == (batchnorm, dropout)
    assert result["var_4"] > 0
    model = mlp.MLP(64, mlp.HIDDEN["mlp4"], 10, batchnorm, dropout)
    names = [n for n, _ in model.named_children()]
    assert ("bn1" in names) == batchnorm and ("drop1" in names) == (dropout > 0)
    # NSR's layers are still the ReLUs and the logits.
    assert model.regularizable_layers() == {2: "act1", 3: "act2", 4: "fc3"}


@pytest.mark.parametrize("kind", BASELINES)
def test_cnn_trial_with_every_regularizer(kind: str) -> None:
    config = check(cnn.main(dataclasses.replace(CNN_SMOKE, regularizer=kind)), kind)
    assert config[contract.LAYERS] == ("5" if kind in contract.LAYERED else "none")


@pytest.mark.parametrize("kind", BASELINES)
def test_gnn_trial_with_every_regularizer(kind: str) -> None:
    p = gnn.GNNParams(
        synthetic=200, epochs=20, device="cpu", threads=1, regularizer=kind, layers="2",
        dropout=0.0,  # dropout masks differ between processors (tests/trials/test_gnn.py)
    )
    result = gnn.main(p)
    check(result, kind)
    assert result[contract.DEFAULT] < 60.0  # 4 classes: chance is 75 %


def test_nested_regularizer_choice_from_nni_is_flattened() -> None:
    nested = {"regularizer": {"_name": "l2", "l2_weight": 3e-4}, "seed": 1}
    p = merge(mlp.MLPParams, mlp.MLPParams(), nested, "NNI's search space")
    assert (p.regularizer, p.l2_weight, p.seed) == ("l2", 3e-4, 1)
    nested = {"regularizer": {"_name": "nsr", "layers": "3,4", "lambda_3": 0.5}}
    p = merge(mlp.MLPParams, mlp.MLPParams(), nested, "NNI's search space")
    assert (p.regularizer, p.layers, p.lambda_3) == ("nsr", "3,4", 0.5)


def run(entry: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_module(f"trials.{entry}", "--epochs", "1", *args)


@pytest.mark.parametrize(
    ("entry", "args", "message"),
    [
        (
            "mlp",
            ["--regularizer", "dropout"],
            "unknown regularizer 'dropout'; allowed: nsr, l1, l2, jacobian, vcl, none",
        ),
        ("mlp", ["--regularizer", "l1", "--l1-weight", "0"], "l1_weight=0.0 must be > 0"),
        ("mlp", ["--regularizer", "l2", "--l2-weight=-1e-4"], "l2_weight=-0.0001 must be > 0"),
        (
            "mlp",
            ["--regularizer", "vcl", "--vcl-weight", "inf"],
            "vcl_weight='inf' must be a finite number",
        ),
        (
            "mlp",
            ["--regularizer", "jacobian", "--layers", "7"],
            "the model has no layer 7; its layers are 2, 3, 4",
        ),
        (
            "mlp",
            ["--regularizer", "vcl", "--layers", "none"],
            "regularizer='vcl' acts on layers, but layers='none'",
        ),
        ("mlp", ["--dropout", "1"], "dropout=1.0 must be in [0, 1)"),
        ("mlp", ["--dropout", "-0.1"], "dropout=-0.1 must be in [0, 1)"),
        ("mlp", ["--regularizer", "vcl", "--vcl-samples", "1"], "vcl_samples=1 must be 0"),
        (
            "mlp",
            ["--regularizer", "jacobian", "--jacobian-projections", "0"],
            "jacobian_projections=0 must be >= 1",
        ),
        (
            "gnn",
            ["--synthetic", "50", "--regularizer", "jacobian", "--layers", "3"],
            "the model has no layer 3; its layers are 1, 2",
        ),
        (
            "cnn",
            ["--synthetic", "30", "--regularizer", "l1", "--l1-weight", "0"],
            "l1_weight=0.0 must be > 0",
        ),
    ],
)
def test_bad_regularizer_input_is_one_line_and_exit_2(entry: str, args: list[str], message):
    out = run(entry, *args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_unused_strength_of_another_family_is_not_checked_or_reported() -> None:
    # l1_weight=0 is harmless while the trial trains with L2: no error, and not in the config.
    p = dataclasses.replace(
        mlp.MLPParams(dataset="digits", epochs=1, threads=1, probe_samples=100),
        regularizer="l2",
        l1_weight=0.0,
    )
    assert "l1_weight" not in mlp.main(p)[contract.CONFIG]


@pytest.mark.nni
def test_nni_runs_the_nested_table4_search_and_trials_report_their_family(tmp_path) -> None:
    import yaml
    from nni_runner import NNIExperiment, free_port, tiny_config

    space = yaml.safe_load((REPO / "search_spaces" / "mlp4-table4.yml").read_text())["searchSpace"]
    config = tiny_config(max_trials=6, epochs=1, concurrency=2)
    config["searchSpace"] = space
    exp = NNIExperiment(home=tmp_path, port=free_port())
    exp.create(config)
    try:
        exp.wait(timeout=300)
        for trial in exp.trials:
            assert trial["status"] == "SUCCEEDED", exp.trial_log(trial["trialJobId"])
        finals = {}
        for m in exp.metrics:
            if m["type"] == "FINAL":
                data = json.loads(m["data"])
                finals[m["trialJobId"]] = json.loads(data) if isinstance(data, str) else data
        assert len(finals) == 6
        # What NNI chose is what the trials trained with and reported. Compared as multisets:
        # NNI 3.0 with trialConcurrency > 1 may record a neighbour's parameters for a trial,
        # which is why storage reads the trial's own config first.
        branch_keys = {
            b["_name"]: sorted(set(b) - {"_name"}) for b in space["regularizer"]["_value"]
        }
        chosen = []
        for trial in exp.trials:
            branch = json.loads(trial["hyperParameters"][0])["parameters"]["regularizer"]
            name = branch["_name"]
            active = contract.parse_layers(branch.get("layers"))
            # NSR's λ of layers it does not regularize had no effect and are not reported.
            effective = {
                k: v
                for k, v in branch.items()
                if not (contract.LAMBDA_KEY.match(k) and int(k[7:]) not in active)
            }
            chosen.append(repr(sorted(effective.items())))
        reported = []
        for final in finals.values():
            cfg = final[contract.CONFIG]
            name = cfg[contract.REGULARIZER]
            keys = [k for k in branch_keys[name] if k in cfg]
            reported.append(repr(sorted({"_name": name, **{k: cfg[k] for k in keys}}.items())))
        assert sorted(chosen) == sorted(reported)
        assert len({f[contract.CONFIG][contract.REGULARIZER] for f in finals.values()}) >= 3
    finally:
        exp.stop()
