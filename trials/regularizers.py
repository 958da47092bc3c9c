"""Regularizers as one kind of thing: NSR and the paper's Table-4 baselines behind one interface.

A regularizer adds a penalty to a training step's loss. The training loop (trials/engine.py) calls,
per step::

    reg.set_targets(y, index)          # labels of the coming forward pass (GNNs: which rows)
    loss = reg.add_penalty(ce)         # after the forward pass: ce + strength · penalty
    ...
    reg.remove()                       # once, when training ends or fails: hooks off the model

and gives ``reg.parameters()`` (VCL's β) to the optimizer beside the model's. Families:

* ``nsr`` — Neuron Steadiness (trials/nsr.py), λ per layer (``lambda_<k>`` on ``layers``).
* ``l1`` — ``l1_weight · Σ|w|`` over the weight matrices and kernels (not biases, not batch norm).
* ``l2`` — ``l2_weight · Σw²`` over the same weights, as a loss term (the CNN optimizers' weight
  decay stays as it is, separately).
* ``jacobian`` — ``jacobian_weight / 2 · ||J||²_F`` per sample, J the Jacobian of each chosen
  layer's output (``layers``; the logits by default) with respect to the model's input, estimated
  by random projections (Hoffman, Roberts & Yaida 2019): ``||J||²_F ≈ C · ||vᵀJ||²`` for v uniform
  on the unit sphere of the C outputs, ``jacobian_projections`` draws per step (default 1).
* ``vcl`` — Variance Constancy Loss (Littwin & Wolf 2018, Eq. 17) on the chosen layers: from the
  step's first two consecutive sub-batches s1, s2 of n samples, per neuron
  ``(1 − σ²_s1 / (σ²_s2 + β))²`` with a learned β per neuron (initially 1), averaged over a
  layer's neurons, summed over layers, times ``vcl_weight``. n = ``vcl_samples`` (0: half the
  batch).
* ``none`` — nothing (vanilla).

Strength ranges for searches (loguniform) are in ``contract.STRENGTH_RANGES``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from trials import contract
from trials.nsr import NeuronSteadiness, neuron_responses, resolve_module


class Regularizer(Protocol):
    """What the training loop needs of a regularizer (NeuronSteadiness is one as it is)."""

    def parameters(self) -> list[Tensor]: ...

    def set_targets(self, y: Tensor, index: Tensor | None = None) -> None: ...

    def add_penalty(self, loss: Tensor) -> Tensor: ...

    def remove(self) -> None: ...


class NoRegularizer:
    """Vanilla training: the loss unchanged."""

    def parameters(self) -> list[Tensor]:
        return []

    def set_targets(self, y: Tensor, index: Tensor | None = None) -> None:
        pass

    def add_penalty(self, loss: Tensor) -> Tensor:
        return loss

    def remove(self) -> None:
        pass


def penalized_weights(model: nn.Module) -> list[Tensor]:
    """Weight matrices and convolution kernels (dim >= 2): what L1/L2 penalize, as is usual;
    biases and batch-norm scales (dim 1) are left alone."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]


class WeightPenalty(NoRegularizer):
    """``weight · Σ|w|`` (p=1) or ``weight · Σw²`` (p=2) over :func:`penalized_weights`."""

    def __init__(self, model: nn.Module, weight: float, p: int) -> None:
        if p not in (1, 2):
            raise ValueError(f"p must be 1 or 2, got {p}")
        self.weights = penalized_weights(model)
        self.weight = weight
        self.p = p

    def value(self) -> Tensor:
        """The penalty without its weight: Σ|w| or Σw²."""
        if self.p == 1:
            # One fused op for all tensors: each op costs microseconds of dispatch on a CPU.
            return torch.stack(torch._foreach_norm(self.weights, 1)).sum()  # ()
        return torch.stack(torch._foreach_norm(self.weights, 2)).square().sum()  # ()

    def add_penalty(self, loss: Tensor) -> Tensor:
        return torch.add(loss, self.value(), alpha=self.weight)


class _Hooked(NoRegularizer):
    """Shared plumbing of the hook-based baselines: targets, captured outputs, hook removal."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._handles: list[Any] = []
        self._index: Tensor | None = None
        self._active = False
        self._outputs: list[Tensor] = []

    def set_targets(self, y: Tensor, index: Tensor | None = None) -> None:
        self._index = index
        self._active = True

    def _capture(self, names: Sequence[str], flatten: bool) -> None:
        for name in names:
            module = resolve_module(self.model, name)
            self._handles.append(module.register_forward_hook(self._hook(flatten)))

    def _hook(self, flatten: bool):  # noqa: ANN202 - a torch hook closure
        def hook(module: nn.Module, inputs: object, output: Tensor) -> None:
            if not module.training or not self._active:
                return
            x = output.flatten(1) if flatten else neuron_responses(output)  # (B, K)
            self._outputs.append(x if self._index is None else x[self._index])

        return hook

    def _take(self) -> list[Tensor]:
        outputs, self._outputs, self._active = self._outputs, [], False
        return outputs

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


class JacobianNorm(_Hooked):
    """Hoffman et al.'s Jacobian regularizer by random projections (see the module docstring).

    The model's input is made a tensor with gradient by a forward pre-hook on the model (its first
    positional argument) or, with ``input_module``, by a hook on that module's output (the CNNs'
    ``normalize``: their uint8 input has no gradient).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        weight: float,
        projections: int = 1,
        input_module: str | None = None,
    ) -> None:
        super().__init__(model)
        if projections < 1:
            raise ValueError(f"projections must be >= 1, got {projections}")
        self.weight = weight
        self.projections = projections
        self._input: Tensor | None = None
        if input_module is None:
            self._handles.append(model.register_forward_pre_hook(self._input_pre_hook))
        else:
            module = resolve_module(model, input_module)
            self._handles.append(module.register_forward_hook(self._input_hook))
        self._capture(layers, flatten=True)

    def _track(self, x: Tensor) -> Tensor:
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        self._input = x
        return x

    def _input_pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not module.training or not self._active:
            return None
        return (self._track(args[0]), *args[1:])

    def _input_hook(self, module: nn.Module, inputs: object, output: Tensor) -> Tensor | None:
        if not module.training or not self._active:
            return None
        return self._track(output)

    def frobenius_sq(self, outputs: Sequence[Tensor], x: Tensor) -> Tensor:
        """Estimate of Σ_layers mean_i ||∂out_i/∂x||²_F over the batch, with graph for backward.

        Σ_i ||v_iᵀ J_i||² is read off one backward of Σ_i v_i·out_i: each sample's gradient lies in
        its own input row (MLP, CNN), and for a GNN, where rows mix, the cross terms
        v_iᵀ J_i J_kᵀ v_k have mean 0 for independent v_i, v_k — unbiased either way.
        """
        total = torch.zeros((), device=x.device)
        for out in outputs:
            batch, width = out.shape
            for _ in range(self.projections):
                v = torch.randn(out.shape, device=out.device, dtype=out.dtype)  # (B, K)
                v = v / v.norm(dim=1, keepdim=True)  # uniform on the unit sphere, per sample
                (grad,) = torch.autograd.grad(
                    (out * v).sum(), x, create_graph=True, retain_graph=True
                )  # (B, D...) or (n, F)
                total = total + width * grad.float().square().sum() / batch
        return total / self.projections

    def add_penalty(self, loss: Tensor) -> Tensor:
        outputs, x = self._take(), self._input
        self._input = None
        if not outputs or x is None:
            return loss
        return torch.add(loss, self.frobenius_sq(outputs, x), alpha=self.weight / 2)


class VarianceConstancy(_Hooked):
    """Littwin & Wolf's VCL on named layers, with a learned β per neuron (see the docstring)."""

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        weight: float,
        example_inputs: tuple[Tensor, ...],
        samples: int = 0,
    ) -> None:
        super().__init__(model)
        if samples < 0 or samples == 1:
            raise ValueError(f"samples must be 0 (half the batch) or >= 2, got {samples}")
        self.weight = weight
        self.samples = samples
        self.layers = list(layers)
        self.betas = [
            nn.Parameter(torch.ones(n, device=example_inputs[0].device))
            for n in self._widths(example_inputs)
        ]
        self._capture(self.layers, flatten=False)

    def _widths(self, example_inputs: tuple[Tensor, ...]) -> list[int]:
        """Each layer's neuron count, from one forward pass in eval mode (β is sized up front,
        so the optimizer can own it from the first step)."""
        widths: dict[str, int] = {}

        def record(name: str):  # noqa: ANN202 - a torch hook closure
            def hook(module: nn.Module, inputs: object, output: Tensor) -> None:
                widths[name] = neuron_responses(output).shape[1]

            return hook

        handles = [
            resolve_module(self.model, name).register_forward_hook(record(name))
            for name in self.layers
        ]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(*example_inputs)
        finally:
            self.model.train(was_training)
            for h in handles:
                h.remove()
        return [widths[name] for name in self.layers]

    def parameters(self) -> list[Tensor]:
        return list(self.betas)

    def loss_of(self, x: Tensor, beta: Tensor) -> Tensor | None:
        """VCL of one layer's responses x: (B, N), or None when the batch has < 4 samples."""
        n = self.samples or x.shape[0] // 2
        if n < 2 or 2 * n > x.shape[0]:
            return None
        var1 = x[:n].float().var(dim=0)  # (N,) unbiased sample variance of s1
        var2 = x[n : 2 * n].float().var(dim=0)  # (N,)
        return (1.0 - var1 / (var2 + beta)).square().mean()  # ()

    def add_penalty(self, loss: Tensor) -> Tensor:
        outputs = self._take()
        if not outputs:
            return loss
        total = torch.zeros((), device=loss.device)
        for x, beta in zip(outputs, self.betas, strict=True):
            term = self.loss_of(x, beta)
            if term is not None:
                total = total + term
        return torch.add(loss, total, alpha=self.weight)


def check_strength(name: str, value: float) -> None:
    """A strength must be a finite number > 0 (the parameter parser already refuses inf/nan)."""
    if not (value > 0 and math.isfinite(value)):
        low, high = contract.STRENGTH_RANGES[name]
        raise ValueError(
            f"{name}={value} must be > 0 (searched loguniform in [{low:g}, {high:g}]; "
            "use regularizer='none' for no regularizer)"
        )


def build(
    kind: str,
    model: nn.Module,
    *,
    layers: Mapping[int, str],
    regularized: Sequence[int],
    lambdas: Mapping[int, float],
    strength: float,
    num_classes: int,
    queue_batches: int,
    example_inputs: tuple[Tensor, ...],
    jacobian_projections: int = 1,
    vcl_samples: int = 0,
    input_module: str | None = None,
) -> Regularizer:
    """The regularizer ``kind`` (``contract.REGULARIZERS``) on ``model``.

    ``layers`` maps the model's layer indices to module names; ``regularized`` are the indices it
    acts on (NSR, Jacobian, VCL); ``lambdas`` NSR's λ per index; ``strength`` the baseline's weight.
    """
    names = [layers[k] for k in regularized]
    if kind == contract.NSR:
        if not lambdas:
            return NoRegularizer()
        return NeuronSteadiness(
            model, {layers[k]: lam for k, lam in lambdas.items()}, num_classes, queue_batches
        )
    if kind == contract.NO_REGULARIZER:
        return NoRegularizer()
    if kind in ("l1", "l2"):
        return WeightPenalty(model, strength, 1 if kind == "l1" else 2)
    if kind == "jacobian":
        return JacobianNorm(model, names, strength, jacobian_projections, input_module)
    if kind == "vcl":
        return VarianceConstancy(model, names, strength, example_inputs, vcl_samples)
    raise ValueError(f"unknown regularizer {kind!r}; allowed: {', '.join(contract.REGULARIZERS)}")


def from_params(
    p: Any,
    model: nn.Module,
    layers: Mapping[int, str],
    regularized: Sequence[int],
    num_classes: int,
    example_inputs: tuple[Tensor, ...],
    input_module: str | None = None,
) -> Regularizer:
    """The regularizer a trial's parameters ``p`` ask for (checked by ``regularized_layers``)."""
    kind = p.regularizer
    strength_key = contract.STRENGTH_KEYS.get(kind)
    return build(
        kind,
        model,
        layers=layers,
        regularized=regularized,
        lambdas={k: float(getattr(p, contract.lambda_key(k))) for k in regularized}
        if kind == contract.NSR
        else {},
        strength=float(getattr(p, strength_key)) if strength_key else 0.0,
        num_classes=num_classes,
        queue_batches=p.queue_batches,
        example_inputs=example_inputs,
        jacobian_projections=p.jacobian_projections,
        vcl_samples=p.vcl_samples,
        input_module=input_module,
    )
