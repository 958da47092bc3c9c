"""The MLP trial: architecture, layer numbering, parameters, bad input, and a real NNI failure."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from nni_runner import NNIExperiment, free_port, tiny_config
from torch import nn
from trial_cli import run_module

from trials.mlp import HIDDEN, MLP, MLPParams, main
from trials.params import TrialError, merge


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_module("trials.mlp", *args, env=env)


@pytest.mark.parametrize("name", list(HIDDEN))
def test_architecture_and_paper_layer_numbering(name: str) -> None:
    model = MLP(784, HIDDEN[name], 10)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [*HIDDEN[name], 10]
    layers = model.regularizable_layers()
    depth = int(name[3:])
    assert sorted(layers) == list(range(2, depth + 1))
    assert layers[depth] == f"fc{depth - 1}"  # the last layer is the logits
    assert isinstance(dict(model.named_modules())[layers[2]], nn.ReLU)
    assert all(float(m.bias.detach().abs().sum()) == 0.0 for m in linears)  # zero biases


def test_nni_parameters_override_and_unknown_keys_are_named() -> None:
    p = merge(MLPParams, MLPParams(), {"layers": 4, "lambda_4": "7.5", "seed": 3.0}, "NNI")
    assert (p.layers, p.lambda_4, p.seed) == ("4", 7.5, 3)
    with pytest.raises(TrialError, match="unknown parameter 'learning_rate'.*allowed: model"):
        merge(MLPParams, MLPParams(), {"learning_rate": 0.1}, "NNI's search space")
    with pytest.raises(TrialError, match="seed=2.5 is not a valid int"):
        merge(MLPParams, MLPParams(), {"seed": 2.5}, "NNI")


def test_main_returns_the_contract_and_nsr_beats_vanilla_on_digits() -> None:
    base = dict(dataset="digits", epochs=15, lr=0.1, batch_size=32, threads=1)
    vanilla = main(MLPParams(layers="none", **base))
    nsr = main(MLPParams(layers="4", lambda_4=7.4865, **base))
    for result in (vanilla, nsr):
        assert {"default", "test_error", "best_epoch", "epoch_seconds"} <= result.keys()
        assert {
            "var_2",
            "var_3",
            "var_4",
            "var_2_init",
            "var_3_init",
            "var_4_init",
        } <= result.keys()
        assert 1 <= result["best_epoch"] <= 15
    # NSR on the logits shrinks their intra-class variance relative to vanilla training.
    assert nsr["var_4"] < vanilla["var_4"]
    # Not asserted: which of the two has the lower error. On 359 validation images that is one
    # seed's trajectory on one processor; benchmarks/mlp_table.py measures it over seeds.


def test_same_seed_same_result() -> None:
    p = MLPParams(dataset="digits", epochs=2, lr=0.1, threads=1, layers="3,4")
    a, b = main(p), main(p)
    a.pop("epoch_seconds"), b.pop("epoch_seconds")
    assert a == b


def test_cli_prints_the_final_metrics_as_json() -> None:
    out = run_cli("--epochs", "1", "--layers", "3", "--lambda-3", "0.5", "--probe-samples", "200")
    assert out.returncode == 0, out.stderr
    final = json.loads(out.stdout)
    assert final["best_epoch"] == 1 and "var_3_init" in final
    assert "epoch   1/1" in out.stderr  # progress goes to stderr, results to stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lambda-4", "-1"], "lambda_4=-1.0 must be > 0"),
        (["--lambda-4", "0"], "lambda_4=0.0 must be > 0"),
        (["--lambda-4", "inf"], "lambda_4='inf' must be a finite number"),
        (["--lr", "nan"], "lr='nan' must be a finite number"),
        (["--layers", "3,7"], "the model has no layer 7; its layers are 2, 3, 4"),
        (["--layers", "fc3"], "'fc3' is not a layer index"),
        (["--dataset", "cifar"], "unknown data set 'cifar'; allowed: digits, mnist, fashion-mnist"),
        (["--model", "mlp5"], "unknown model 'mlp5'; allowed: mlp3, mlp4"),
        (["--epochs", "0"], "epochs=0 must be >= 1"),
        (["--device", "tpu"], "device='tpu' is not allowed"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args: list[str], message: str) -> None:
    out = run_cli(*args, "--epochs", args[1] if args[0] == "--epochs" else "1")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_missing_offline_data_set_says_where_to_put_files(tmp_path: Path) -> None:
    out = run_cli("--dataset", "mnist", "--data-root", str(tmp_path), "--download", "false")
    assert out.returncode == 2
    line = out.stderr.strip()
    assert "\n" not in line and "data set 'mnist' not found" in line
    assert str(tmp_path / "mnist") in line and "train-images-idx3-ubyte" in line


def test_fashion_mnist_reads_the_debian_files() -> None:
    if not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").exists():
        pytest.fail("Debian package dataset-fashion-mnist is not installed (.ci/run installs it)")
    from trials.data import load_image_dataset

    s = load_image_dataset("fashion-mnist", "/nonexistent", download=False)
    assert (len(s.train_x), len(s.val_x), len(s.test_x)) == (50_000, 10_000, 10_000)
    assert s.input_dim == 784 and s.train_x.dtype == torch.float32
    assert float(s.train_x.max()) <= 1.0 and sorted(s.train_y.unique().tolist()) == list(range(10))


@pytest.mark.nni
def test_unknown_search_space_key_fails_the_trial_in_nni(tmp_path: Path) -> None:
    config = tiny_config(max_trials=1, epochs=1, concurrency=1)
    config["searchSpace"]["learning_rate"] = {"_type": "choice", "_value": [0.1]}
    exp = NNIExperiment(home=tmp_path, port=free_port())
    exp.create(config)
    try:
        exp.wait(timeout=180)
        assert [t["status"] for t in exp.trials] == ["FAILED"]
        log = exp.trial_log(exp.trials[0]["trialJobId"])
        assert "unknown parameter 'learning_rate'" in log
    finally:
        exp.stop()
