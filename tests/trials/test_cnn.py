"""CNN trials: two batches of each CNN on CIFAR-shaped tensors, the augmentation, the CIFAR reader,
NSR's effect on the logits, and bad input as one line with a non-zero exit."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from trial_cli import run_cli, run_module

from trials.cifar import CIFAR_DIR, augment, load_cifar10
from trials.cnn import CNNParams, cli, layer_indices, main, prepare_model
from trials.nsr import NeuronSteadiness

# Tiny on purpose: a ResNet-18 step on 2 shared CPU cores costs ~0.2 s per image.
SMOKE = CNNParams(
    synthetic=30, max_batches=2, batch_size=4, eval_batch=8, epochs=1, device="cpu", threads=2
)


@pytest.mark.parametrize(("model", "logits"), [("resnet18", 5), ("vgg19", 6)])
def test_two_batches_of_each_cnn_report_every_layer(model, logits) -> None:
    params = dataclasses.replace(SMOKE, model=model, layers=f"1,{logits}")
    metrics = main(params)
    assert layer_indices(params)[-1] == logits
    for k in layer_indices(params):
        assert metrics[f"var_{k}"] > 0 and metrics[f"var_{k}_init"] > 0
    assert f"var_{logits + 1}" not in metrics
    assert 0.0 <= metrics["default"] <= 100.0 and metrics["best_epoch"] == 1
    assert metrics["images_per_second"] > 0


def test_every_numbered_layer_is_a_module_of_the_right_width() -> None:
    widths = {"resnet18": [64, 128, 256, 512, 10], "vgg19": [64, 128, 256, 512, 512, 10]}
    for name, expected in widths.items():
        model = prepare_model(name, 10, torch.device("cpu")).eval()
        modules = dict(model.named_modules())
        seen: dict[str, int] = {}

        def record(mod, inputs, out, name, seen=seen) -> None:
            seen[name] = out.shape[1]

        hooks = [
            modules[m].register_forward_hook(lambda mod, i, out, m=m: record(mod, i, out, m))
            for m in model.regularizable_layers().values()
        ]
        with torch.no_grad():
            model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
        for h in hooks:
            h.remove()
        assert [seen[m] for m in model.regularizable_layers().values()] == expected


def test_nsr_hooks_on_a_conv_stage_and_the_logits_penalize_with_gradient() -> None:
    torch.manual_seed(0)
    model = prepare_model("resnet18", 10, torch.device("cpu")).train()
    names = model.regularizable_layers()
    reg = NeuronSteadiness(model, {names[4]: 1.0, names[5]: 1.0}, num_classes=10)
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1])
    reg.set_targets(y)
    model(x)
    penalty = reg.pop()
    assert isinstance(penalty, torch.Tensor) and penalty.requires_grad
    assert float(penalty.detach()) > 0
    # Stage 4 counts its 512 channels as neurons (spatial means); the logits their 10 outputs.
    assert reg.queues[names[4]].means().shape == (10, 512)
    assert reg.queues[names[5]].means().shape == (10, 10)
    penalty.backward()
    assert float(model.layer4[1].conv2.weight.grad.abs().sum()) > 0
    assert model.layer1[0].conv1.weight.grad is not None
    # In eval mode the hooks stay silent: evaluation pays nothing for NSR.
    model.eval()
    reg.set_targets(y)
    with torch.no_grad():
        model(x)
    assert reg.pop() == 0.0


def test_augment_is_a_shifted_or_mirrored_crop_of_the_zero_padded_image() -> None:
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8)
    x = x.view(2, 3, 32, 32)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for b in range(2):
        crops = [padded[b, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[b], c) or torch.equal(out[b], c.flip(2)) for c in crops)


def _write_fake_cifar(root: Path) -> None:
    directory = root / CIFAR_DIR
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {
            "data": rng.integers(0, 256, (1200, 3072), dtype=np.uint8),
            "labels": list(rng.integers(0, 10, 1200)),
        }
        with open(directory / name, "wb") as f:
            pickle.dump(entry, f)


def test_cifar_reader_splits_train_validation_test(tmp_path) -> None:
    _write_fake_cifar(tmp_path)
    splits = load_cifar10(str(tmp_path), split_seed=0, download=False)
    # 5 x 1,200 training images: 5,000 to validation, the rest to training; the test batch intact.
    assert splits.train_x.shape == (1000, 3, 32, 32) and splits.val_x.shape == (5000, 3, 32, 32)
    assert splits.test_x.shape == (1200, 3, 32, 32) and splits.train_x.dtype == torch.uint8
    assert splits.num_classes == 10


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--model", "resnet18", "--layers", "6"], "no layer 6"),
        (["--model", "vgg19", "--layers", "penultimate"], "'penultimate' is not a layer index"),
        (["--model", "resnet50"], "unknown model 'resnet50'"),
        (["--dataset", "imagenet"], "unknown data set 'imagenet'"),
        (["--max-batches", "-1"], "max_batches=-1 must be >= 0"),
        (["--device", "tpu"], "device='tpu'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys) -> None:
    code, err = run_cli(cli, argv, capsys)
    assert code == 2
    assert len(err) == 1 and needle in err[0], err


def test_subprocess_unknown_layer_and_missing_data_are_one_line(tmp_path) -> None:
    for argv, needle in (
        (["--model", "vgg19", "--layers", "7"], "the model has no layer 7; its layers are 1"),
        (["--data-root", str(tmp_path), "--download", "false"], "cifar-10-batches-py"),
    ):
        out = run_module("trials.cnn", *argv, timeout=120)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], out.stderr
