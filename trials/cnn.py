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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trials.cifar import augment, load_cifar10, synthetic_cifar
from trials.cnn_models import CNN_LAYERS, CNN_MODELS
from trials.data import Splits
from trials.engine import Batch, Family, run_trial
from trials.nsr import LayerVariance, intra_class_variance
from trials.params import (
    TrialError,
    family_params,
    param,
    require_at_least,
    require_choice,
)
from trials.runtime import run_entry, start_trial

DATASETS = ("cifar10",)
# (optimizer, default lr) per model, as in the paper's implementation references.
OPTIMIZERS = {"resnet18": ("sgd", 0.1), "vgg19": ("adam", 1e-4)}
ENTRY = "cnn"  # the configuration's entry name (trials/contract.py)


@dataclass(frozen=True)
class CNNParams(
    family_params(
        model=("resnet18", CNN_MODELS),
        dataset=("cifar10", DATASETS),
        lambdas=range(1, 7),
        notes={5: "ResNet-18's logits", 6: "VGG-19's logits"},
    )
):
    epochs: int = param(200, "training epochs (paper: 200 for ResNet-18, 500 for VGG-19)")
    lr: float = param(0.0, "learning rate; 0 = the model's default (0.1 SGD / 1e-4 Adam)")
    batch_size: int = param(100, "mini-batch size")
    momentum: float = param(0.9, "SGD momentum (ResNet-18)")
    weight_decay: float = param(5e-4, "weight decay")
    cosine: bool = param(True, "cosine learning-rate decay to 0 over the epochs")
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
    amp: bool = param(True, "bfloat16 autocast on CUDA (ignored on the CPU)")


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


def cnn_family(model: nn.Module, splits: Splits, p: CNNParams, device: torch.device) -> Family:
    """CIFAR training: a reshuffle per epoch, augmented batches, cosine schedule, autocast."""
    limit = p.max_batches * p.batch_size if p.max_batches else None
    probe_n = min(p.probe_samples, limit or p.probe_samples)
    autocast = autocast_for(device, p.amp)
    gen = torch.Generator(device=device).manual_seed(p.seed)  # batch order and augmentation
    n = len(splits.train_x)

    def train_batches(epoch: int) -> Iterator[Batch]:
        perm = torch.randperm(n, generator=gen, device=device)  # (n,)
        for steps, start in enumerate(range(0, n, p.batch_size)):
            if p.max_batches and steps >= p.max_batches:
                break
            idx = perm[start : start + p.batch_size]  # (B,)
            xb = augment(splits.train_x[idx], gen)  # (B, 3, 32, 32) uint8
            yield Batch((xb,), splits.train_y[idx])

    def evaluate(split: str) -> float:
        x, y = (splits.val_x, splits.val_y) if split == "val" else (splits.test_x, splits.test_y)
        return image_error(model, x, y, p.eval_batch, limit, autocast)

    return Family(
        train_batches,
        evaluate,
        lambda: probe(model, splits, probe_n, p.eval_batch),
        autocast=autocast,
        rate_key="images_per_second",
    )


def make_optimizer(
    model: nn.Module, extra: Sequence[Tensor], p: CNNParams
) -> torch.optim.Optimizer:
    """The paper's optimizer for ``p.model``; a regularizer's own parameters (VCL's β) in a group
    without weight decay (it would pull β, a variance offset, towards 0)."""
    kind, default_lr = OPTIMIZERS[p.model]
    lr = p.lr or default_lr
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    if extra:
        groups.append({"params": list(extra), "weight_decay": 0.0})
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=p.momentum, weight_decay=p.weight_decay)
    return torch.optim.Adam(groups, lr=lr, weight_decay=p.weight_decay)


def main(p: CNNParams) -> dict[str, Any]:
    """Train one CNN as ``p`` says and return the final metrics (also reported to NNI)."""
    regularized, device = start_trial(p, validate, layer_indices)
    if p.synthetic:
        splits = synthetic_cifar(p.synthetic, seed=p.split_seed)
    else:
        splits = load_cifar10(p.data_root, p.split_seed, p.download)
    splits = splits.to(device)
    model = prepare_model(p.model, splits.num_classes, device)
    scheduler: list[torch.optim.lr_scheduler.LRScheduler] = []

    def optimizer(extra: Sequence[Tensor]) -> torch.optim.Optimizer:
        opt = make_optimizer(model, extra, p)
        if p.cosine:
            scheduler.append(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.epochs))
        return opt

    def step_schedule() -> None:
        for sched in scheduler:
            sched.step()

    family = cnn_family(model, splits, p, device)
    family.after_epoch = step_schedule
    # The Jacobian is taken w.r.t. the normalized float image: the uint8 input has no gradient.
    return run_trial(
        p,
        ENTRY,
        model,
        family,
        regularized,
        splits.num_classes,
        (splits.train_x[:2],),
        optimizer,
        input_module="normalize",
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_entry(main, CNNParams, "trials.cnn", __doc__, argv)


if __name__ == "__main__":
    sys.exit(cli())
