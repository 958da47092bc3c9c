"""One training loop for every trial family (MLP, CNN, GNN) and every regularizer.

Per epoch: the family's training batches, one step each of ``cross-entropy + the regularizer's
penalty`` (trials/regularizers.py), then the validation error (reported to NNI). The model state of
the best validation epoch is kept, and the test error is measured once, on that state, at the end —
the test set never steers anything. Intra-class variance of every regularizable layer is probed at
initialization and at the end of training. What differs between families — how batches are drawn,
how errors and the probe are measured, a learning-rate schedule, autocast — comes in a
:class:`Family`; the regularizer's hooks come off the model when training ends, and when it fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trials.data import Splits
from trials.nsr import LayerVariance, intra_class_variance
from trials.params import RegularizedParams
from trials.regularizers import Regularizer, from_params
from trials.report import Reporter, final_metrics, with_config

EVAL_BATCH = 5_000


@dataclass(frozen=True)
class Batch:
    """One training step's data: ``model(*inputs)``, the labels, and (GNNs) which output rows the
    labels belong to."""

    inputs: tuple[Tensor, ...]
    y: Tensor  # (B,)
    index: Tensor | None = None  # (B,) rows of the model's output that y labels


@dataclass
class Family:
    """The per-family parts of training; :func:`train` does the rest."""

    batches: Callable[[int], Iterable[Batch]]  # epoch (1-based) -> its training batches
    evaluate: Callable[[str], float]  # "val" | "test" -> error in %, in eval mode
    probe: Callable[[], dict[int, LayerVariance]]  # intra-class variance per layer index
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext
    after_epoch: Callable[[], None] = field(default=lambda: None)  # e.g. a scheduler's step
    rate_key: str | None = None  # report samples per training second under this key


class PlainSGD:
    """SGD without momentum or weight decay, θ ← θ − lr·∇θ: the paper's MLP optimizer.

    The same update as ``torch.optim.SGD(params, lr)`` (bit for bit, tested), in one fused op per
    step. Why not torch's: on a CPU its per-parameter Python loop and hooks cost ~4 % of an MLP-4
    step, and its constructor imports ``torch._dynamo``, ~1 s of every trial's start-up.
    """

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr = lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        live = [p for p in self.params if p.grad is not None]
        if live:  # the fused op refuses an empty list
            torch._foreach_add_(live, [p.grad for p in live], alpha=-self.lr)


def chunks(x: Tensor, y: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(x), size):
        yield x[start : start + size], y[start : start + size]


@torch.no_grad()
def error_rate(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Classification error in % over (x, y), in eval mode, batch by batch."""
    was_training = model.training
    model.eval()
    wrong = 0
    for xb, yb in chunks(x, y, EVAL_BATCH):
        wrong += int((model(xb).argmax(dim=1) != yb).sum())
    model.train(was_training)
    return 100.0 * wrong / max(len(y), 1)


def probe(
    model: nn.Module, layers: Mapping[int, str], splits: Splits, samples: int
) -> dict[int, LayerVariance]:
    # The first `samples` training images: the split is already shuffled by the split seed, so this
    # is a fixed random subset — the same for every trial of a search, comparable across trials.
    n = min(samples, len(splits.train_x))
    data = chunks(splits.train_x[:n], splits.train_y[:n], EVAL_BATCH)
    return intra_class_variance(model, layers, data, splits.num_classes)


def train_step(
    model: nn.Module,
    regularizer: Regularizer,
    optimizer: torch.optim.Optimizer | PlainSGD,
    batch: Batch,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> Tensor:
    """One optimizer step of cross-entropy + the regularizer's penalty; the loss, detached."""
    regularizer.set_targets(batch.y, batch.index)
    with autocast():
        out = model(*batch.inputs)  # (B, num_classes); hooks see the layers during this call
        if batch.index is not None:
            out = out[batch.index]  # (B, num_classes): the labelled rows
        loss = regularizer.add_penalty(F.cross_entropy(out, batch.y))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(
    model: nn.Module,
    family: Family,
    make_regularizer: Callable[[], Regularizer],
    make_optimizer: Callable[[Sequence[Tensor]], torch.optim.Optimizer | PlainSGD],
    epochs: int,
    reporter: Reporter,
) -> dict[str, Any]:
    """Train ``model`` for ``epochs`` and return the final metrics (trials/report.py).

    ``make_optimizer`` gets the regularizer's own parameters (VCL's β) to optimize beside the
    model's. The regularizer is made after the initial probe and removed in a ``finally``.
    """
    var_init = family.probe()
    regularizer = make_regularizer()
    best_val, best_epoch, best_state = float("inf"), 0, _snapshot(model)
    train_seconds, samples, epochs_run = 0.0, 0, 0
    try:
        optimizer = make_optimizer(regularizer.parameters())
        model.train()
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            loss_sum: Tensor | float = 0.0
            steps = 0
            for batch in family.batches(epoch):
                # No .item() per step: it would make the CPU wait for a GPU every batch.
                loss_sum = loss_sum + train_step(
                    model, regularizer, optimizer, batch, family.autocast
                )
                steps += 1
                samples += len(batch.y)
            train_loss = float(loss_sum) / max(steps, 1)  # one sync per epoch: the timing is true
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            epochs_run = epoch
            family.after_epoch()
            val_error = family.evaluate("val")
            if val_error < best_val:
                best_val, best_epoch, best_state = val_error, epoch, _snapshot(model)
            reporter.epoch(epoch, epochs, val_error, train_loss, seconds)
    finally:
        regularizer.remove()
    var_end = family.probe()
    model.load_state_dict(best_state)
    test_error = family.evaluate("test")
    extra = {}
    if family.rate_key:
        extra[family.rate_key] = samples / max(train_seconds, 1e-9)
    return final_metrics(
        best_val,
        test_error,
        best_epoch,
        epochs_run,
        train_seconds / max(epochs_run, 1),
        var_init,
        var_end,
        extra,
    )


def split_family(
    model: nn.Module,
    splits: Splits,
    layers: Mapping[int, str],
    batch_size: int,
    seed: int,
    probe_samples: int,
) -> Family:
    """MLP training on in-memory (x, y): a reshuffle per epoch, batches in order."""
    shuffle = torch.Generator(device=splits.train_x.device).manual_seed(seed)
    n = len(splits.train_x)
    # The shuffled epoch is gathered into buffers allocated once: a fresh 157 MB tensor per epoch
    # (MNIST) costs page faults, ~60 ms an epoch on a 2-core CPU against ~13 ms for the copy.
    x_epoch, y_epoch = torch.empty_like(splits.train_x), torch.empty_like(splits.train_y)

    def batches(epoch: int) -> Iterator[Batch]:
        perm = torch.randperm(n, generator=shuffle, device=splits.train_x.device)
        torch.index_select(splits.train_x, 0, perm, out=x_epoch)  # (n, D) one gather per epoch
        torch.index_select(splits.train_y, 0, perm, out=y_epoch)  # (n,)
        for xb, yb in chunks(x_epoch, y_epoch, batch_size):
            yield Batch((xb,), yb)

    def evaluate(split: str) -> float:
        x, y = (splits.val_x, splits.val_y) if split == "val" else (splits.test_x, splits.test_y)
        return error_rate(model, x, y)

    return Family(batches, evaluate, lambda: probe(model, layers, splits, probe_samples))


def run_trial(
    p: RegularizedParams,
    entry: str,
    model: nn.Module,
    family: Family,
    regularized: Sequence[int],
    num_classes: int,
    example_inputs: tuple[Tensor, ...],
    make_optimizer: Callable[[Sequence[Tensor]], torch.optim.Optimizer | PlainSGD],
    input_module: str | None = None,
) -> dict[str, Any]:
    """What every trial entry ends with: its regularizer built from ``p`` on ``regularized``,
    ``train`` for ``p.epochs`` with per-epoch reports, and the final metrics with the effective
    configuration (``config``). ``example_inputs`` (and ``input_module``, the module whose output
    the Jacobian differentiates) let the regularizer check its layers before training."""
    layers = model.regularizable_layers()  # type: ignore[operator]
    metrics = train(
        model,
        family,
        lambda: from_params(
            p, model, layers, regularized, num_classes, example_inputs, input_module
        ),
        make_optimizer,
        p.epochs,
        Reporter(),
    )
    return with_config(metrics, p, regularized, entry)
