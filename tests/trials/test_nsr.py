"""The regularizer: ring-buffer class means, ReLU zeros, gradient direction, hooks, probe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trials.data import load_image_dataset
from trials.engine import probe
from trials.mlp import MLP
from trials.nsr import (
    ClassMeanQueue,
    NeuronSteadiness,
    intra_class_variance,
    neuron_responses,
    nsr_penalty,
)
from trials.nsr_kernel import cpu_kernel


def _exact_means(
    batches: list[tuple[torch.Tensor, torch.Tensor]], classes: int, mask: bool
) -> torch.Tensor:
    x = torch.cat([b[0] for b in batches]).double()  # (sum B, N)
    y = torch.cat([b[1] for b in batches])
    means = torch.zeros(classes, x.shape[1], dtype=torch.float64)
    for j in range(classes):
        rows = x[y == j]
        if mask:
            counts = (rows != 0).sum(0).clamp_min(1)
            means[j] = rows.sum(0) / counts
        elif len(rows):
            means[j] = rows.mean(0)
    return means


def test_queue_means_equal_exact_means_over_last_m_batches() -> None:
    gen = torch.Generator().manual_seed(0)
    queue = ClassMeanQueue(num_classes=4, queue_batches=3)
    seen = []
    for step in range(12):
        # Class 3 is absent from every other batch, class 2 from the first few.
        low = 0
        high = 3 if step % 2 else 4
        y = torch.randint(low, high, (7,), generator=gen)
        if step < 4:
            y[y == 2] = 0
        x = torch.randn(7, 5, generator=gen)
        seen.append((x, y))
        got = queue.update(x, y)
        want = _exact_means(seen[-3:], 4, mask=False)
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(queue.means().double(), want, rtol=1e-5, atol=1e-6)


def test_queue_with_relu_mask_ignores_zero_responses() -> None:
    gen = torch.Generator().manual_seed(1)
    queue = ClassMeanQueue(num_classes=3, queue_batches=2)
    seen = []
    for _ in range(6):
        x = torch.relu(torch.randn(9, 4, generator=gen))  # about half the responses are 0
        y = torch.randint(0, 3, (9,), generator=gen)
        seen.append((x, y))
        got = queue.update(x, y, (x != 0).float())
        torch.testing.assert_close(
            got.double(), _exact_means(seen[-2:], 3, mask=True), rtol=1e-5, atol=1e-6
        )
    # Zeros pulled into the mean would lower it: the masked means are above the plain ones.
    assert (queue.means().double() >= _exact_means(seen[-2:], 3, mask=False) - 1e-6).all()


def test_penalty_leaves_out_masked_zeros() -> None:
    x = torch.tensor([[0.0, 2.0], [4.0, 0.0]])
    y = torch.tensor([0, 0])
    mu = torch.tensor([[1.0, 1.0]])
    mask = (x != 0).float()
    # Only (2-1)^2 and (4-1)^2 count: mean over the two non-zero responses.
    assert float(nsr_penalty(x, y, mu, mask)) == 5.0
    # Without the mask the zeros count too: ((−1)² + 1² + 3² + (−1)²) / 4.
    assert float(nsr_penalty(x, y, mu)) == 3.0


def test_gradient_pulls_each_response_toward_its_class_mean() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 6, generator=gen, requires_grad=True)
    y = torch.randint(0, 3, (16,), generator=gen)
    mu = torch.randn(3, 6, generator=gen)
    nsr_penalty(x, y, mu).backward()
    assert x.grad is not None
    distance_before = (x - mu[y]).abs()
    stepped = x.detach() - 0.1 * x.grad
    assert ((stepped - mu[y]).abs() < distance_before).all()
    # The class means are constants: no gradient flows into them.
    mu_param = mu.clone().requires_grad_(True)
    nsr_penalty(x, y, mu_param).backward()
    assert mu_param.grad is None


def test_hooks_on_two_layers_give_two_independent_penalties() -> None:
    torch.manual_seed(0)
    model = MLP(8, [6, 5], 3)
    x, y = torch.randn(10, 8), torch.randint(0, 3, (10,))

    def penalty(layers: dict[str, float]) -> float:
        reg = NeuronSteadiness(model, layers, num_classes=3)
        reg.set_targets(y)
        model(x)
        value = float(torch.as_tensor(reg.pop()).detach())
        reg.remove()
        return value

    alone_2, alone_4 = penalty({"act1": 0.5}), penalty({"fc3": 2.0})
    both = penalty({"act1": 0.5, "fc3": 2.0})
    assert alone_2 > 0 and alone_4 > 0
    assert abs(both - (alone_2 + alone_4)) < 1e-6
    # The λs scale each layer's penalty on its own.
    assert abs(penalty({"act1": 1.0, "fc3": 2.0}) - (2 * alone_2 + alone_4)) < 1e-6


def test_hook_is_idle_in_eval_mode_and_after_remove() -> None:
    model = MLP(4, [3], 2)
    reg = NeuronSteadiness(model, {"fc2": 1.0}, num_classes=2)
    reg.set_targets(torch.tensor([0, 1]))
    model.eval()
    model(torch.randn(2, 4))
    assert reg.pop() == 0.0
    model.train()
    reg.remove()
    model(torch.randn(2, 4))
    assert reg.pop() == 0.0


def test_relu_layers_are_detected_and_masked() -> None:
    model = MLP(4, [3], 2)
    reg = NeuronSteadiness(model, {"act1": 1.0, "fc2": 1.0}, num_classes=2)
    assert {s.name: s.relu for s in reg.specs} == {"act1": True, "fc2": False}


def test_conv_outputs_reduce_to_channel_means() -> None:
    out = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    responses = neuron_responses(out)  # (2, 3)
    assert responses.shape == (2, 3)
    assert float(responses[0, 0]) == 1.5


def test_probe_matches_direct_computation() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(50, 4, generator=gen) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = torch.randint(0, 3, (50,), generator=gen)
    model = nn.Sequential()
    model.add_module("id", nn.Identity())
    batches = [(x[i : i + 7], y[i : i + 7]) for i in range(0, 50, 7)]
    result = intra_class_variance(model, {1: "id"}, batches, num_classes=3)[1]
    sigma = torch.zeros(4, dtype=torch.float64)
    for j in range(3):
        rows = x[y == j].double()
        sigma += (len(rows) / 50) * rows.var(0, unbiased=False)
    assert abs(result.total - float(sigma.sum())) < 1e-9
    assert abs(result.mean - float(sigma.mean())) < 1e-9
    assert result.neurons == 4


def test_large_lambda_lowers_intra_class_variance_versus_vanilla() -> None:
    splits = load_image_dataset("digits")

    def train(lam: float) -> float:
        torch.manual_seed(0)
        model = MLP(splits.input_dim, [256, 100], 10)
        layers = model.regularizable_layers()
        reg = NeuronSteadiness(model, {layers[4]: lam} if lam else {}, 10)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _epoch in range(5):
            for i in range(0, len(splits.train_x), 50):
                xb, yb = splits.train_x[i : i + 50], splits.train_y[i : i + 50]
                reg.set_targets(yb)
                loss = F.cross_entropy(model(xb), yb) + reg.pop()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return probe(model, layers, splits, 10_000)[4].total

    vanilla, regularized = train(0.0), train(20.0)
    assert regularized < 0.5 * vanilla, (regularized, vanilla)


def test_queue_stays_exact_over_many_steps() -> None:
    # Thousands of float32 add/subtract pairs: the periodic rebuild keeps the means exact.
    gen = torch.Generator().manual_seed(4)
    queue = ClassMeanQueue(num_classes=10, queue_batches=5)
    seen = []
    for _ in range(2_500):
        x = 50.0 + 10.0 * torch.randn(20, 3, generator=gen)
        y = torch.randint(0, 10, (20,), generator=gen)
        seen = [*seen[-4:], (x, y)]
        got = queue.update(x, y)
    torch.testing.assert_close(
        got.double(), _exact_means(seen, 10, mask=False), rtol=1e-5, atol=1e-4
    )


@pytest.mark.parametrize("kernel", [True, False], ids=["cpp-kernel", "torch-ops"])
def test_hook_penalty_equals_the_pure_function_in_value_and_gradient(kernel: bool) -> None:
    # Both hot paths (the C++ kernel and the op-by-op one) must match λ · nsr_penalty exactly,
    # over several steps so the ring wraps (M = 2) and the class means move.
    gen = torch.Generator().manual_seed(5)
    for relu in (False, True):
        model = nn.Sequential()
        model.add_module("act", nn.ReLU() if relu else nn.Identity())
        reg = NeuronSteadiness(model, {"act": 3.0}, num_classes=4, queue_batches=2, kernel=kernel)
        ref_queue = ClassMeanQueue(num_classes=4, queue_batches=2)
        for _ in range(4):
            x = torch.randn(12, 5, generator=gen, requires_grad=True)
            y = torch.randint(0, 4, (12,), generator=gen)
            reg.set_targets(y)
            out = model(x)
            fused = reg.pop()
            assert isinstance(fused, torch.Tensor)
            (grad_fused,) = torch.autograd.grad(fused, x)

            x_ref = x.detach().clone().requires_grad_(True)
            resp = torch.relu(x_ref) if relu else x_ref
            mask = (resp.detach() != 0).float() if relu else None
            mean = ref_queue.update(resp, y, mask)
            ref = 3.0 * nsr_penalty(resp, y, mean, mask)
            (grad_ref,) = torch.autograd.grad(ref, x_ref)
            torch.testing.assert_close(fused.detach(), ref.detach())
            torch.testing.assert_close(grad_fused, grad_ref)
            assert out.shape == x.shape


def test_cpu_kernel_builds_here() -> None:
    # CI has a C++ compiler: the fast path must really be in use there, not silently skipped.
    assert cpu_kernel() is not None


def test_kernel_queue_stays_exact_over_many_steps() -> None:
    # The kernel keeps the same running totals and rebuilds them every RESYNC_EVERY steps.
    kernel = cpu_kernel()
    assert kernel is not None
    gen = torch.Generator().manual_seed(6)
    queue = ClassMeanQueue(num_classes=10, queue_batches=5)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _ in range(2_500):
        x = 50.0 + 10.0 * torch.randn(20, 3, generator=gen)
        y = torch.randint(0, 10, (20,), generator=gen)
        seen = [*seen[-4:], (x, y)]
        queue.add_penalty_compiled(kernel, torch.zeros(()), x, y, 1.0, relu=False)
    torch.testing.assert_close(
        queue.means().double(), _exact_means(seen, 10, mask=False), rtol=1e-5, atol=1e-4
    )


def test_kernel_and_torch_paths_share_one_queue() -> None:
    # Switching path mid-training (e.g. a CPU fallback) continues the same class means.
    kernel = cpu_kernel()
    assert kernel is not None
    gen = torch.Generator().manual_seed(7)
    queue, ref = ClassMeanQueue(3, 2), ClassMeanQueue(3, 2)
    for step in range(6):
        x = torch.relu(torch.randn(8, 4, generator=gen))
        y = torch.randint(0, 3, (8,), generator=gen)
        mask = (x != 0).float()
        if step % 2:
            queue.add_penalty_compiled(kernel, torch.zeros(()), x, y, 1.0, relu=True)
        else:
            queue.push(x, y, mask)
        ref.push(x, y, mask)
        torch.testing.assert_close(queue.means(), ref.means())


def test_kernel_rejects_a_label_outside_the_classes() -> None:
    kernel = cpu_kernel()
    assert kernel is not None
    queue = ClassMeanQueue(num_classes=3)
    x = torch.randn(4, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="label 7 is outside 0..2"):
        queue.add_penalty_compiled(kernel, torch.zeros(()), x, torch.tensor([0, 1, 7, 2]), 1.0,
                                   relu=False)


def test_inplace_change_after_the_hooked_layer_is_a_clear_error() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True))
    reg = NeuronSteadiness(model, {"0": 1.0}, num_classes=2)
    reg.set_targets(torch.tensor([0, 1]))
    loss = model(torch.randn(2, 3)).sum()
    with pytest.raises(RuntimeError, match="layer '0' was modified in place"):
        reg.add_penalty(loss)


def test_kernel_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NSR_CPU_KERNEL", "0")
    cpu_kernel.cache_clear()
    try:
        assert cpu_kernel() is None
    finally:
        cpu_kernel.cache_clear()


def test_kernel_gradient_follows_a_scaled_loss() -> None:
    # (c · loss).backward() — gradient accumulation, loss scaling — must scale the penalty's
    # gradient too, exactly as the op-by-op path does.
    gen = torch.Generator().manual_seed(8)
    x0 = torch.randn(6, 3, generator=gen)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    grads = []
    for kernel in (True, False):
        model = nn.Sequential()
        model.add_module("id", nn.Identity())
        reg = NeuronSteadiness(model, {"id": 2.0}, num_classes=2, kernel=kernel)
        x = x0.clone().requires_grad_(True)
        reg.set_targets(y)
        out = model(x)
        (0.25 * reg.add_penalty(out.square().mean())).backward()
        assert x.grad is not None
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0
