"""Neuron Steadiness Regularization (NSR, NeurIPS 2022): the penalty, the hook module, the probe.

Three pieces, each usable alone:

* :func:`nsr_penalty` — the pure penalty for one batch, given the class means.
* :class:`ClassMeanQueue` — the paper's "memory queue": per class, the count and the sum of the
  responses of the last M batches in two ring buffers, so the class mean is updated in O(batch)
  per step (subtract the oldest batch, add the newest) instead of re-stacking M batches.
* :class:`NeuronSteadiness` — attaches to any ``nn.Module`` by layer name through forward hooks and
  accumulates ``λ_l · mean_{i,n} (x_{i,n} − μ̂_{y_i,n})²`` for every regularized layer l.
* :func:`~trials.nsr_kernel.cpu_kernel` — the same queue update and penalty as one compiled C++
  call (``trials/csrc/nsr_cpu.cpp``, built by ``trials/nsr_kernel.py``), used for float32 CPU
  layers: each PyTorch op costs microseconds of dispatch on a CPU, and the op-by-op step costs
  +11 % on MLP-4 where the kernel costs +3-4 % (``benchmarks/overhead.py``). Built once on first
  use (~30 s, cached); where it cannot be built, the PyTorch ops run instead, with a warning.
  ``NSR_CPU_KERNEL=0`` turns it off.
* :func:`intra_class_variance` — measures, without training, each layer's intra-class response
  variance on a data set (sum and mean over neurons of σ_n = Σ_j α_j Var(X_{n,j})), batch by batch.

A "neuron" is one feature of a layer's output for one sample: a (B, C, H, W) output is reduced to
its channel means (B, C); a GNN layer's (num_nodes, F) output has one sample per node. For ReLU
layers a zero response means "inactive" and is left out of both the class means and the penalty
(paper, Observations section); other layers (e.g. the logits) keep every response.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trials.nsr_kernel import cpu_kernel


def neuron_responses(output: Tensor) -> Tensor:
    """Flatten a layer output to one row per sample and one column per neuron."""
    if output.dim() == 2:
        return output  # (B, N)
    if output.dim() > 2:
        # Convolutional maps: a neuron is a channel, its response the spatial mean.
        return output.flatten(2).mean(dim=2)  # (B, C, H, W) -> (B, C)
    raise ValueError(f"a layer output of shape {tuple(output.shape)} has no neuron axis")


def nsr_penalty(x: Tensor, y: Tensor, class_mean: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared deviation of each response from its class mean (without λ).

    x: (B, N) responses, with gradient; y: (B,) class indices; class_mean: (J, N), treated as a
    constant (the paper's estimate of E[X_{n,j}]); mask: (B, N) of 0/1 — which responses count
    (ReLU zeros do not). Mean over the responses that count, so λ has the official code's scale.
    """
    target = class_mean.detach()[y].to(x.dtype)  # (B, N)
    if mask is None:
        return F.mse_loss(x, target)  # () one fused op: this runs on every training step
    # Masked responses get themselves as target, so they add 0 and only the count divides.
    target = torch.where(mask.bool(), target, x.detach())  # (B, N)
    return F.mse_loss(x, target, reduction="sum") / mask.sum().clamp_min(1.0)  # ()


class ClassMeanQueue:
    """Per-class running sums over the last ``queue_batches`` batches (the paper's Eq. 5-7).

    One ring buffer holds, per batch slot m and class j, the response sums s_{m,j} next to the
    counts c_{m,j} (one count column, or one per neuron when zeros are masked out); the running
    totals (S_j, C_j) change by "subtract the slot being overwritten, add the new batch": O(batch)
    per step, a handful of tensor ops, whatever M is.

    This runs on every training step, and on a CPU each tensor op costs microseconds of dispatch
    whatever its size: the step is written for few ops (slot views made once, sums and counts in
    one ``index_add_``, per-sample means gathered before dividing).
    """

    # Float32 totals drift by rounding over tens of thousands of add/subtract pairs; rebuilding
    # them from the ring now and then (one sum over M slots) keeps them exact to float precision.
    RESYNC_EVERY = 1000

    def __init__(self, num_classes: int, queue_batches: int = 5) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if queue_batches < 1:
            raise ValueError(f"queue_batches must be >= 1, got {queue_batches}")
        self.num_classes = num_classes
        self.queue_batches = queue_batches
        self._ring: Tensor | None = None  # (M, J, N + K): sums then counts, K = 1 or N
        self._slots: list[Tensor] = []  # the M views ring[m], made once
        self._total: Tensor | None = None  # (J, N + K): S_j then C_j
        self._total_sums: Tensor | None = None  # (J, N) view of S_j, made once
        self._total_counts: Tensor | None = None  # (J, K) view of C_j, made once
        self._ones: Tensor | None = None  # (B, 1) count column for unmasked layers
        self._neurons = 0
        self._cpu_width = -1
        self._slot = 0
        self._steps = 0

    def _buffers(self, neurons: int, width: int, device: torch.device) -> None:
        """Allocate the ring and the totals (zeros) unless they already have this shape."""
        ring = self._ring
        if ring is not None and ring.shape[2] == width and self._neurons == neurons:
            if ring.device == device:
                return
        self._ring = torch.zeros(self.queue_batches, self.num_classes, width, device=device)
        self._slots = list(self._ring.unbind(0))
        self._total = torch.zeros(self._ring.shape[1:], device=device)
        self._total_sums, self._total_counts = self._total.split([neurons, width - neurons], dim=1)
        self._neurons = neurons
        # The kernel's cheap "same buffers?" test: the width of a CPU ring, -1 elsewhere.
        self._cpu_width = width if device.type == "cpu" else -1
        self._slot = 0
        self._steps = 0

    def _advance(self) -> None:
        self._slot = (self._slot + 1) % self.queue_batches
        self._steps += 1

    def push(self, x: Tensor, y: Tensor, mask: Tensor | None = None) -> None:
        """Add one batch (x: (B, N) without gradient, y: (B,)) and drop the oldest of the M."""
        if x.dtype != torch.float32:
            x = x.float()  # (B, N); fp16/bf16 sums would lose counts past 2,048
        if mask is None:
            if self._ones is None or self._ones.shape[0] != x.shape[0]:
                self._ones = torch.ones(x.shape[0], 1, device=x.device)
            stats = torch.cat((x, self._ones), dim=1)  # (B, N + 1)
        else:
            # Masked zeros add nothing to the sums; the per-neuron counts skip them.
            stats = torch.cat((x, mask.to(x.dtype)), dim=1)  # (B, 2N)
        self._buffers(x.shape[1], stats.shape[1], x.device)
        assert self._total is not None and self._ring is not None
        slot = self._slots[self._slot]  # (J, N + K)
        self._total.sub_(slot)
        slot.zero_().index_add_(0, y, stats)  # this batch's per-class sums and counts
        self._total.add_(slot)
        if (self._steps + 1) % self.RESYNC_EVERY == 0:
            torch.sum(self._ring, dim=0, out=self._total)
        self._advance()

    def add_penalty_compiled(
        self, kernel: ModuleType, loss: Tensor, x: Tensor, y: Tensor, weight: float, relu: bool
    ) -> Tensor:
        """``loss + weight · nsr_penalty(x)`` after pushing (x, y), as one :func:`cpu_kernel` call.

        loss: () float32, x: (B, N) float32, both on the CPU; the same state and arithmetic as
        :meth:`push` + :meth:`sample_means` + the penalty, so both paths can share a queue.
        """
        neurons = x.shape[1]
        width = 2 * neurons if relu else neurons + 1
        if self._cpu_width != width or self._neurons != neurons:
            self._buffers(neurons, width, x.device)
        resync = (self._steps + 1) % self.RESYNC_EVERY == 0
        out = kernel.add_penalty(
            loss, x, y, self._ring, self._total, self._slot, relu, resync, weight
        )
        self._advance()
        return out

    def sample_means(self, y: Tensor) -> Tensor:
        """μ̂_{y_i} for each sample: (B, N). Classes of the last push have a count >= 1."""
        assert self._total_sums is not None and self._total_counts is not None
        # Classes absent from the window divide 0/0, but only classes of y are gathered; masked
        # neurons with no response yet give 0/0 too and are masked out by the caller.
        return torch.div(self._total_sums, self._total_counts).index_select(0, y)  # (B, N)

    def update(self, x: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
        """Push one batch and return the class means μ̂ as (J, N)."""
        self.push(x.detach(), y, mask)
        return self.means()

    def means(self) -> Tensor:
        """Current class means (J, N); zero for a class with no response in the queue."""
        if self._total is None:
            raise RuntimeError("the queue is empty: call update() first")
        n = self._neurons
        return self._total[:, :n] / self._total[:, n:].clamp_min(1.0)


@dataclass(frozen=True)
class LayerSpec:
    """One regularized layer: the module's name in ``model.named_modules()``, its λ, ReLU or not."""

    name: str
    weight: float
    relu: bool


def resolve_module(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        known = ", ".join(n for n in modules if n) or "(none)"
        raise KeyError(f"the model has no layer named {name!r}; its layers are: {known}")
    return modules[name]


def is_relu(module: nn.Module) -> bool:
    return isinstance(module, nn.ReLU)


class NeuronSteadiness:
    """NSR by forward hooks: ``reg.set_targets(y); out = model(x); loss = reg.add_penalty(ce)``.

    ``layers`` maps a module name to its λ (or gives :class:`LayerSpec` for explicit ReLU flags;
    by default a layer counts as ReLU when the hooked module is ``nn.ReLU``). Each layer has its own
    queue and its own λ. Hooks do nothing while the model is in eval mode: evaluation costs nothing.
    ``targets_index`` in :meth:`set_targets` selects which rows of a layer's output are labelled
    samples (GNNs: the training nodes among all nodes). The hooks only keep each layer's responses;
    :meth:`add_penalty` pushes them into the queues and adds the penalties, float32 CPU layers
    through :func:`cpu_kernel` (``kernel=False``: always the PyTorch ops).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Mapping[str, float] | Iterable[LayerSpec],
        num_classes: int,
        queue_batches: int = 5,
        kernel: bool = True,
    ) -> None:
        if isinstance(layers, Mapping):
            specs = [
                LayerSpec(name, float(w), is_relu(resolve_module(model, name)))
                for name, w in layers.items()
            ]
        else:
            specs = list(layers)
        for spec in specs:
            if not spec.weight > 0:
                raise ValueError(f"λ of layer {spec.name!r} must be > 0, got {spec.weight}")
        self.model = model
        self.specs = specs
        self.kernel = kernel
        self.queues = {s.name: ClassMeanQueue(num_classes, queue_batches) for s in specs}
        self._targets: Tensor | None = None
        self._index: Tensor | None = None
        # Per hooked forward: (layer, responses (B, N) with gradient, their labels, x's version).
        self._pending: list[tuple[LayerSpec, Tensor, Tensor, int]] = []
        self._handles = [
            resolve_module(model, s.name).register_forward_hook(self._hook_for(s)) for s in specs
        ]

    def _hook_for(self, spec: LayerSpec):  # noqa: ANN202 - a torch hook closure
        def hook(module: nn.Module, inputs: object, output: Tensor) -> None:
            if not module.training or self._targets is None:
                return
            x = neuron_responses(output)  # (B, N)
            if self._index is not None:
                x = x[self._index]  # (B_labelled, N)
            self._pending.append((spec, x, self._targets, x._version))

        return hook

    def _add_layer(self, loss: Tensor, spec: LayerSpec, x: Tensor, y: Tensor) -> Tensor:
        """``loss + λ · penalty`` of one layer's responses x: (B, N), pushed into its queue."""
        queue = self.queues[spec.name]
        if self.kernel and x.is_cpu and x.dtype is torch.float32 and loss.dtype is torch.float32:
            kernel = cpu_kernel()
            if kernel is not None:
                return queue.add_penalty_compiled(kernel, loss, x, y, spec.weight, spec.relu)
        x_const = x.detach()  # (B, N)
        if not spec.relu:
            queue.push(x_const, y)
            penalty = F.mse_loss(x, queue.sample_means(y))  # () = nsr_penalty, one fused op
        else:
            active = x_const != 0  # (B, N) ReLU zeros are inactive, not responses
            queue.push(x_const, y, active)
            # Inactive responses get themselves as target: they add 0, only the count divides.
            target = torch.where(active, queue.sample_means(y), x_const)  # (B, N)
            penalty = F.mse_loss(x, target, reduction="sum") / active.sum().clamp_min(1)
        # One add(alpha=λ) instead of a multiply and an add: every op on the hot path costs.
        return torch.add(loss, penalty, alpha=spec.weight)

    def set_targets(self, y: Tensor, index: Tensor | None = None) -> None:
        """Labels of the next forward pass (and, for GNNs, which output rows they belong to)."""
        self._targets = y
        self._index = index

    def add_penalty(self, loss: Tensor) -> Tensor:
        """``loss + Σ_l λ_l · penalty_l`` of the forward passes since the last call, then reset."""
        pending, self._pending = self._pending, []
        for spec, x, y, version in pending:
            if x._version != version:
                # The penalty reads the responses now: an in-place op after the hooked layer
                # (e.g. ReLU(inplace=True)) would have changed them since the forward pass.
                raise RuntimeError(
                    f"the output of layer {spec.name!r} was modified in place after its forward "
                    "pass; NSR needs it unchanged (use a non-inplace op after this layer)"
                )
            loss = self._add_layer(loss, spec, x, y)
        return loss

    def pop(self) -> Tensor | float:
        """Σ_l λ_l · penalty_l of the forward passes since the last call (0.0 if none)."""
        if not self._pending:
            return 0.0
        zero = torch.zeros((), device=self._pending[0][1].device)
        return self.add_penalty(zero)

    def parameters(self) -> list[Tensor]:
        """NSR learns nothing of its own (the regularizer interface, trials/regularizers.py)."""
        return []

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@dataclass(frozen=True)
class LayerVariance:
    """Intra-class response variance of one layer: Σ_n σ_n and its mean over the N neurons."""

    total: float
    mean: float
    neurons: int


@contextmanager
def recording(model: nn.Module, names: Iterable[str]) -> Iterator[dict[str, Tensor]]:
    """Capture the neuron responses (B, N) of the named modules on each forward pass."""
    captured: dict[str, Tensor] = {}
    handles = []
    for name in names:

        def hook(module: nn.Module, inputs: object, output: Tensor, _name: str = name) -> None:
            captured[_name] = neuron_responses(output).detach()

        handles.append(resolve_module(model, name).register_forward_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


class VarianceAccumulator:
    """Streams (x, y) batches of one layer; σ_n = Σ_j α_j Var(X_{n,j}) without storing responses."""

    def __init__(self, num_classes: int, relu: bool) -> None:
        self.num_classes = num_classes
        self.relu = relu
        self.samples = torch.zeros(num_classes, dtype=torch.float64)  # (J,) z_j
        self.count: Tensor | None = None  # (J, N)
        self.sum: Tensor | None = None  # (J, N)
        self.sumsq: Tensor | None = None  # (J, N)

    def add(self, x: Tensor, y: Tensor) -> None:
        x = x.detach().to("cpu", torch.float64)  # (B, N)
        y = y.to("cpu")
        if self.sum is None:
            self.count = torch.zeros(self.num_classes, x.shape[1], dtype=torch.float64)
            self.sum = torch.zeros_like(self.count)
            self.sumsq = torch.zeros_like(self.count)
        assert self.count is not None and self.sumsq is not None
        mask = (x != 0).to(torch.float64) if self.relu else torch.ones_like(x)  # (B, N)
        self.samples += torch.bincount(y, minlength=self.num_classes).to(torch.float64)
        self.count.index_add_(0, y, mask)
        self.sum.index_add_(0, y, x * mask)
        self.sumsq.index_add_(0, y, x * x * mask)

    def result(self) -> LayerVariance:
        if self.sum is None or self.count is None or self.sumsq is None:
            raise RuntimeError("no batch was added")
        n = self.count.clamp_min(1.0)
        var = (self.sumsq / n - (self.sum / n).square()).clamp_min(0.0)  # (J, N)
        var = torch.where(self.count > 1, var, torch.zeros_like(var))
        alpha = self.samples / self.samples.sum().clamp_min(1.0)  # (J,)
        sigma = (alpha.unsqueeze(1) * var).sum(dim=0)  # (N,)
        return LayerVariance(float(sigma.sum()), float(sigma.mean()), int(sigma.numel()))


@torch.no_grad()
def intra_class_variance(
    model: nn.Module,
    layers: Mapping[int, str],
    batches: Iterable[tuple[Tensor, Tensor]] | Iterable[tuple[Tensor, Tensor, Tensor]],
    num_classes: int,
) -> dict[int, LayerVariance]:
    """Each layer's intra-class response variance on a data set, in eval mode, batch by batch.

    ``layers`` maps the paper's layer index to a module name. ``batches`` yields ``(inputs, y)`` or,
    for graphs, ``(inputs, y, index)`` where ``index`` picks the labelled rows of every output.
    Inputs may be a tensor or a tuple of tensors (passed as ``model(*inputs)``).
    """
    was_training = model.training
    model.eval()
    accs = {
        k: VarianceAccumulator(num_classes, is_relu(resolve_module(model, name)))
        for k, name in layers.items()
    }
    try:
        with recording(model, layers.values()) as captured:
            for batch in batches:
                inputs, y = batch[0], batch[1]
                index = batch[2] if len(batch) > 2 else None
                model(*inputs) if isinstance(inputs, tuple) else model(inputs)
                for k, name in layers.items():
                    x = captured[name]
                    accs[k].add(x if index is None else x[index], y)
    finally:
        model.train(was_training)
    return {k: acc.result() for k, acc in accs.items()}
