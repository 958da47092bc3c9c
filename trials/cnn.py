"""CNN trials of the paper's Table 2: ResNet-18 and VGG-19 (BN) on CIFAR-10, NSR on chosen layers.

    python -m trials.cnn --model resnet18 --epochs 200 --layers last --lambda-5 1.0
    python -m trials.cnn --model vgg19 --synthetic 64 --max-batches 2 --epochs 1   # smoke run

Layer numbering (trials/cnn_models.py): ResNet-18 layers 1-4 = the four residual stages' outputs,
5 = the logits; VGG-19 layers 1-5 = the five conv stages' outputs, 6 = the logits. NSR on the logits
(``--layers last``) is the default, the paper's rule for CNNs. Optimizers follow the paper: SGD with
momentum 0.9 for ResNet-18 (lr 0.1), Adam for VGG-19 (lr 1e-4); weight decay 5e-4, cosine learning
rate decay to 0 over the epochs, batch 100, pad-4 crop + flip augmentation. On CUDA the forward pass
runs under bfloat16 autocast (no loss scaling needed) with channels-last memory. Inside an NNI trial
the search space's parameters override these flags.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trials.cifar import augment, load_cifar10, synthetic_cifar
from trials.cnn_models import CNN_LAYERS, CNN_MODELS
from trials.data import Splits, default_data_root
from trials.nsr import LayerVariance, NeuronSteadiness, intra_class_variance
from trials.params import (
    TrialError,
    chosen_lambdas,
    from_cli,
    param,
    require_at_least,
    require_choice,
)
from trials.report import Reporter, final_metrics, with_config
from trials.runtime import pick_device, run_main, seed_everything

DATASETS = ("cifar10",)
# (optimizer, default lr) per model, as in the paper's implementation references.
OPTIMIZERS = {"resnet18": ("sgd", 0.1), "vgg19": ("adam", 1e-4)}
ENTRY = "cnn"  # the configuration's entry name (trials/contract.py)


@dataclass(frozen=True)
class CNNParams:
    model: str = param("resnet18", f"architecture: {', '.join(CNN_MODELS)}")
    dataset: str = param("cifar10", f"data set: {', '.join(DATASETS)}")
    layers: str = param("last", "NSR layers: 'none' (vanilla), 'last' (the logits), or '4,5'")
    lambda_1: float = param(1.0, "λ of layer 1 (used when layer 1 is in --layers)")
    lambda_2: float = param(1.0, "λ of layer 2")
    lambda_3: float = param(1.0, "λ of layer 3")
    lambda_4: float = param(1.0, "λ of layer 4")
    lambda_5: float = param(1.0, "λ of layer 5 (ResNet-18's logits)")
    lambda_6: float = param(1.0, "λ of layer 6 (VGG-19's logits)")
    seed: int = param(0, "training seed (weights, batch order, augmentation)")
    epochs: int = param(200, "training epochs (paper: 200 for ResNet-18, 500 for VGG-19)")
    batch_size: int = param(100, "mini-batch size")
    lr: float = param(0.0, "learning rate; 0 = the model's default (0.1 SGD / 1e-4 Adam)")
    momentum: float = param(0.9, "SGD momentum (ResNet-18)")
    weight_decay: float = param(5e-4, "weight decay")
    cosine: bool = param(True, "cosine learning-rate decay to 0 over the epochs")
    queue_batches: int = param(5, "M: batches kept in NSR's class-mean memory queue")
    split_seed: int = param(0, "seed of the fixed 45,000 / 5,000 train/validation split")
    probe_samples: int = param(5_000, "training images used to measure intra-class variance")
    eval_batch: int = param(500, "batch size for evaluation and the variance probe")
    max_batches: int = param(
        0,
        "smoke runs: at most N batches per epoch and N*batch_size "
        "images for validation, test and probe; 0 = no limit",
    )
    synthetic: int = param(
        0,
        "N > 0: N random CIFAR-shaped images with random labels instead of "
        "CIFAR-10 (tests and benchmarks only; errors are meaningless)",
    )
    data_root: str = param(default_data_root(), "directory holding cifar-10-batches-py/")
    download: bool = param(True, "download CIFAR-10 through torchvision when missing")
    device: str = param("auto", "cpu, cuda or auto")
    amp: bool = param(True, "bfloat16 autocast on CUDA (ignored on the CPU)")
    threads: int = param(0, "torch CPU threads; 0 = torch's default")


def layer_indices(p: CNNParams) -> list[int]:
    """The model's regularizable layers: 1-4 (ResNet-18 stages) or 1-5 (VGG-19), then the logits."""
    return list(CNN_LAYERS[p.model])


def validate(p: CNNParams) -> None:
    require_choice("model", p.model, CNN_MODELS)
    if p.synthetic == 0:
        require_choice("data set", p.dataset, DATASETS)
    require_at_least(
        p,
        {
            "epochs": 1,
            "batch_size": 1,
            "eval_batch": 1,
            "queue_batches": 1,
            "probe_samples": 1,
            "max_batches": 0,
            "synthetic": 0,
        },
    )
    if 0 < p.synthetic < 10:
        raise TrialError(f"synthetic={p.synthetic} must be 0 (off) or >= 10 images")
    if p.lr < 0:
        raise TrialError(f"lr={p.lr} must be > 0 (or 0 for the model's default)")
    if p.weight_decay < 0 or not 0 <= p.momentum < 1:
        raise TrialError(
            f"weight_decay={p.weight_decay} must be >= 0 and momentum={p.momentum} in [0, 1)"
        )


def make_optimizer(model: nn.Module, p: CNNParams) -> torch.optim.Optimizer:
    kind, default_lr = OPTIMIZERS[p.model]
    lr = p.lr or default_lr
    if kind == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=p.momentum, weight_decay=p.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=p.weight_decay)


def autocast_for(device: torch.device, amp: bool) -> Callable[[], AbstractContextManager[object]]:
    """bf16 autocast on CUDA when asked; a no-op otherwise (CPU autocast would only slow it)."""
    if amp and device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext


def prepare_model(name: str, num_classes: int, device: torch.device) -> nn.Module:
    model = CNN_MODELS[name](num_classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # cuDNN's fastest layout with bf16
    return model


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    reg: NeuronSteadiness,
    autocast: Callable[[], AbstractContextManager[object]],
    xb: Tensor,
    yb: Tensor,
) -> Tensor:
    """One optimizer step of cross-entropy + NSR on an (augmented) batch; the loss, detached."""
    reg.set_targets(yb)
    with autocast():
        logits = model(xb)  # (B, num_classes); the hooks queue their penalties during this call
        loss = reg.add_penalty(F.cross_entropy(logits, yb))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def batches(x: Tensor, y: Tensor, size: int, limit: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    n = len(x) if limit is None else min(limit, len(x))
    for start in range(0, n, size):
        end = min(start + size, n)
        yield x[start:end], y[start:end]


@torch.no_grad()
def image_error(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    size: int,
    limit: int | None,
    autocast: Callable[[], AbstractContextManager[object]],
) -> float:
    """Classification error in % over (the first ``limit`` of) (x, y), in eval mode."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=x.device)
    total = 0
    for xb, yb in batches(x, y, size, limit):
        with autocast():
            wrong += (model(xb).argmax(dim=1) != yb).sum()
        total += len(yb)
    model.train(was_training)
    return 100.0 * float(wrong) / max(total, 1)


def probe(model: nn.Module, splits: Splits, samples: int, size: int) -> dict[int, LayerVariance]:
    # The first `samples` training images, un-augmented: the split is shuffled by the split seed,
    # so this is a fixed random subset, the same for every trial of a search. float32 (no autocast)
    # so variances are comparable across devices.
    data = batches(splits.train_x, splits.train_y, size, samples)
    return intra_class_variance(model, model.regularizable_layers(), data, splits.num_classes)


def train_cnn(
    model: nn.Module,
    splits: Splits,
    lambdas: dict[int, float],
    p: CNNParams,
    device: torch.device,
    reporter: Reporter,
) -> dict[str, float]:
    """Train with NSR on ``lambdas`` (layer -> λ; empty = vanilla) and return the final metrics."""
    limit = p.max_batches * p.batch_size if p.max_batches else None
    probe_n = min(p.probe_samples, limit or p.probe_samples)
    autocast = autocast_for(device, p.amp)
    layers = model.regularizable_layers()
    var_init = probe(model, splits, probe_n, p.eval_batch)
    reg = NeuronSteadiness(
        model, {layers[k]: lam for k, lam in lambdas.items()}, splits.num_classes, p.queue_batches
    )
    optimizer = make_optimizer(model, p)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=p.epochs) if p.cosine else None
    )
    gen = torch.Generator(device=device).manual_seed(p.seed)  # batch order and augmentation
    n = len(splits.train_x)
    best_val, best_epoch = float("inf"), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    train_seconds, images = 0.0, 0
    model.train()
    for epoch in range(1, p.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen, device=device)  # (n,)
        loss_sum = torch.zeros((), device=device)
        steps = 0
        for start in range(0, n, p.batch_size):
            if p.max_batches and steps >= p.max_batches:
                break
            idx = perm[start : start + p.batch_size]  # (B,)
            xb = augment(splits.train_x[idx], gen)  # (B, 3, 32, 32) uint8
            # No .item() per step: it would make the CPU wait for the GPU every batch.
            loss_sum += train_step(model, optimizer, reg, autocast, xb, splits.train_y[idx])
            steps += 1
            images += len(idx)
        train_loss = float(loss_sum) / max(steps, 1)  # one sync per epoch, so the timing is true
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        if scheduler is not None:
            scheduler.step()
        val_error = image_error(model, splits.val_x, splits.val_y, p.eval_batch, limit, autocast)
        if val_error < best_val:
            best_val, best_epoch = val_error, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        reporter.epoch(epoch, p.epochs, val_error, train_loss, seconds)
    reg.remove()
    var_end = probe(model, splits, probe_n, p.eval_batch)
    model.load_state_dict(best_state)
    test_error = image_error(model, splits.test_x, splits.test_y, p.eval_batch, limit, autocast)
    return final_metrics(
        best_val,
        test_error,
        best_epoch,
        p.epochs,
        train_seconds / p.epochs,
        var_init,
        var_end,
        {"images_per_second": images / max(train_seconds, 1e-9)},
    )


def main(p: CNNParams) -> dict[str, Any]:
    """Train one CNN as ``p`` says and return the final metrics (also reported to NNI)."""
    validate(p)
    lambdas = chosen_lambdas(p, layer_indices(p))
    device = pick_device(p.device)
    seed_everything(p.seed, p.threads)
    if p.synthetic:
        splits = synthetic_cifar(p.synthetic, seed=p.split_seed)
    else:
        splits = load_cifar10(p.data_root, p.split_seed, p.download)
    splits = splits.to(device)
    model = prepare_model(p.model, splits.num_classes, device)
    metrics = train_cnn(model, splits, lambdas, p, device, Reporter())
    return with_config(metrics, p, sorted(lambdas), ENTRY)


def cli(argv: Sequence[str] | None = None) -> int:
    return run_main(
        lambda: main(from_cli(CNNParams, argv, "python -m trials.cnn", __doc__ or "")),
    )


if __name__ == "__main__":
    sys.exit(cli())
