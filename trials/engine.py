"""One readable training loop for classifiers on in-memory tensors, with NSR on chosen layers.

Per epoch: shuffle, SGD steps of ``cross-entropy + Σ_l λ_l · NSR_l``, validation error (reported to
NNI). The model state of the best validation epoch is kept, and the test error is measured once, on
that state, at the end — the test set never steers anything. Intra-class variance of every
regularizable layer is probed on (a fixed subset of) the training data at initialization and at the
end of training.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trials.data import Splits
from trials.nsr import LayerVariance, NeuronSteadiness, intra_class_variance
from trials.report import Reporter, final_metrics

EVAL_BATCH = 5_000


@dataclass(frozen=True)
class LoopConfig:
    epochs: int
    batch_size: int
    seed: int
    queue_batches: int
    probe_samples: int


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


def train_classifier(
    model: nn.Module,
    splits: Splits,
    layers: Mapping[int, str],
    lambdas: Mapping[int, float],
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer | PlainSGD],
    cfg: LoopConfig,
    reporter: Reporter,
) -> dict[str, Any]:
    """Train with NSR on ``lambdas`` (layer index -> λ; empty = vanilla); return final metrics."""
    var_init = probe(model, layers, splits, cfg.probe_samples)
    reg = NeuronSteadiness(
        model, {layers[k]: lam for k, lam in lambdas.items()}, splits.num_classes, cfg.queue_batches
    )
    optimizer = make_optimizer(model)
    shuffle = torch.Generator(device=splits.train_x.device).manual_seed(cfg.seed)
    n = len(splits.train_x)
    best_val, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
    train_seconds = 0.0
    # The shuffled epoch is gathered into buffers allocated once: a fresh 157 MB tensor per epoch
    # (MNIST) costs page faults, ~60 ms an epoch on a 2-core CPU against ~13 ms for the copy.
    x_epoch, y_epoch = torch.empty_like(splits.train_x), torch.empty_like(splits.train_y)
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffle, device=splits.train_x.device)
        torch.index_select(splits.train_x, 0, perm, out=x_epoch)  # (n, D) one gather per epoch
        torch.index_select(splits.train_y, 0, perm, out=y_epoch)  # (n,)
        loss_sum = torch.zeros((), device=x_epoch.device)
        steps = 0
        for xb, yb in chunks(x_epoch, y_epoch, cfg.batch_size):
            reg.set_targets(yb)
            loss = reg.add_penalty(F.cross_entropy(model(xb), yb))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()  # no .item() per step: it would sync a GPU every batch
            steps += 1
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        val_error = error_rate(model, splits.val_x, splits.val_y)
        if val_error < best_val:
            best_val, best_epoch = val_error, epoch
            best_state = copy.deepcopy(model.state_dict())
        reporter.epoch(epoch, cfg.epochs, val_error, float(loss_sum) / max(steps, 1), seconds)
    reg.remove()
    var_end = probe(model, layers, splits, cfg.probe_samples)
    model.load_state_dict(best_state)
    test_error = error_rate(model, splits.test_x, splits.test_y)
    return final_metrics(
        best_val,
        test_error,
        best_epoch,
        cfg.epochs,
        train_seconds / max(cfg.epochs, 1),
        var_init,
        var_end,
    )
