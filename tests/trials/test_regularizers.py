"""Each regularizer against its definition, its effect at a large strength, its hooks' lifetime."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trials import contract
from trials.data import load_image_dataset
from trials.engine import Batch, Family, PlainSGD, train, train_step
from trials.mlp import MLP
from trials.nsr import LayerVariance, NeuronSteadiness, intra_class_variance
from trials.regularizers import (
    JacobianNorm,
    NoRegularizer,
    Regularizer,
    VarianceConstancy,
    WeightPenalty,
    build,
    penalized_weights,
)
from trials.report import Reporter


def small_mlp(seed: int = 0, hidden: int = 16) -> MLP:
    torch.manual_seed(seed)
    return MLP(6, [hidden], 3)


# ------------------------------------------------------------------ definitions (closed forms)
@pytest.mark.parametrize("p", [1, 2])
def test_weight_penalty_gradients_equal_their_closed_forms(p: int) -> None:
    model = small_mlp()
    for param in model.parameters():  # non-zero biases: they must still get no gradient
        nn.init.normal_(param)
    reg = WeightPenalty(model, weight=0.3, p=p)
    reg.add_penalty(torch.zeros(())).backward()
    weights = penalized_weights(model)
    assert [w.shape for w in weights] == [model.fc1.weight.shape, model.fc2.weight.shape]
    expected_value = sum(
        float(w.detach().abs().sum() if p == 1 else w.detach().square().sum()) for w in weights
    )
    assert float(reg.value().detach()) == pytest.approx(expected_value, rel=1e-5)
    for w in weights:
        closed = 0.3 * torch.sign(w) if p == 1 else 0.6 * w  # d/dw of 0.3·|w| and of 0.3·w²
        torch.testing.assert_close(w.grad, closed)
    assert model.fc1.bias.grad is None and model.fc2.bias.grad is None


def exact_jacobian_sq(model: nn.Module, x: Tensor) -> float:
    """Σ_i ||∂f(x)_i / ∂x||²_F / B over the whole batch Jacobian (rows may mix, as in a GNN)."""
    jac = torch.autograd.functional.jacobian(model, x)  # (B, C, B, D)
    return float(jac.square().sum()) / x.shape[0]


class RowMixing(nn.Module):
    """A GNN-like map: each output row depends on several input rows (a fixed mixing matrix)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.mix = torch.rand(4, 4)
        self.net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.mix @ x)  # (4, 3)


@pytest.mark.parametrize("kind", ["mlp", "mixing"])
def test_jacobian_estimate_is_unbiased_against_the_exact_norm(kind: str) -> None:
    model: nn.Module = small_mlp() if kind == "mlp" else RowMixing()
    last = "fc2" if kind == "mlp" else "net.2"
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(2))
    exact = exact_jacobian_sq(model, x)
    reg = JacobianNorm(model, [last], weight=2.0, projections=4000)
    model.train()
    torch.manual_seed(3)
    reg.set_targets(torch.zeros(4, dtype=torch.long))
    model(x)
    estimate = float(reg.add_penalty(torch.zeros(())))  # weight/2 · estimate = the estimate
    assert estimate == pytest.approx(exact, rel=0.03)
    # One projection is a noisy draw of the same quantity, not the quantity itself.
    single = JacobianNorm(model, [last], weight=2.0, projections=1)
    draws = []
    for _ in range(3):
        single.set_targets(torch.zeros(4, dtype=torch.long))
        model(x)
        draws.append(float(single.add_penalty(torch.zeros(()))))
    assert len(set(draws)) == 3
    reg.remove(), single.remove()


def test_vcl_matches_its_formula_on_a_hand_computed_batch() -> None:
    # s1 = rows 0-1, s2 = rows 2-3 (n = half the batch). Unbiased variances per neuron:
    # s1: (1, 3) -> 2, (2, 2) -> 0;  s2: (0, 2) -> 2, (1, 5) -> 8.  β = 1:
    # neuron 0: (1 - 2/(2+1))² = 1/9; neuron 1: (1 - 0/(8+1))² = 1; mean = 5/9.
    x = torch.tensor([[1.0, 2.0], [3.0, 2.0], [0.0, 1.0], [2.0, 5.0]])
    model = nn.Sequential(nn.Identity())
    reg = VarianceConstancy(model, ["0"], weight=3.0, example_inputs=(x,))
    reg.set_targets(torch.zeros(4, dtype=torch.long))
    model.train()(x.requires_grad_())
    loss = reg.add_penalty(torch.zeros(()))
    assert float(loss) == pytest.approx(3.0 * 5 / 9)
    loss.backward()
    # β is learned: d/dβ of (1 - 2/(2+β))² at β=1 is 2·(1/3)·(2/9) / 2 neurons · 3.
    beta = reg.parameters()[0]
    assert float(beta.grad[0]) == pytest.approx(3.0 * 2 * (1 / 3) * (2 / 9) / 2)
    # With n = 2 of a batch of 4 set explicitly, the same; a batch too small adds nothing.
    assert float(reg.loss_of(x.detach(), torch.ones(2))) == pytest.approx(5 / 9)
    assert reg.loss_of(x[:3].detach(), torch.ones(2)) is None


# ------------------------------------------------------------------ effect at a large strength
def digits() -> tuple[Tensor, Tensor]:
    s = load_image_dataset("digits", "/nonexistent", download=False)
    return s.train_x, s.train_y


def train_small(reg_of, steps: int = 150) -> tuple[MLP, Tensor, Tensor]:
    """MLP-3 (64-32-10) on digits for a few epochs with the regularizer ``reg_of(model)``."""
    x, y = digits()
    torch.manual_seed(0)
    model = MLP(64, [32], 10)
    reg: Regularizer = reg_of(model)
    opt = PlainSGD([*model.parameters(), *reg.parameters()], lr=0.1)
    model.train()
    for step in range(steps):
        i = (step * 32) % (len(x) - 32)
        train_step(model, reg, opt, Batch((x[i : i + 32],), y[i : i + 32]))
    reg.remove()
    return model, x, y


def l1_of(model: nn.Module) -> float:
    return float(sum(w.detach().abs().sum() for w in penalized_weights(model)))


def l2_of(model: nn.Module) -> float:
    return float(sum(w.detach().square().sum() for w in penalized_weights(model)))


def jacobian_of(model: nn.Module, x: Tensor) -> float:
    model.eval()
    return sum(exact_jacobian_sq(model, x[i : i + 1]) for i in range(20)) / 20


def vcl_of(model: nn.Module, x: Tensor) -> float:
    """Mean VCL (β = 1) of layer 2 over many sub-batch pairs of 8: the quantity VCL lowers."""
    model.eval()
    with torch.no_grad():
        h = model.act1(model.fc1(x[:800]))  # (800, 32)
    ones = torch.ones(h.shape[1])
    terms = [
        (1 - h[i : i + 8].var(0) / (h[i + 8 : i + 16].var(0) + ones)).square().mean()
        for i in range(0, 784, 16)
    ]
    return float(torch.stack(terms).mean())


def nsr_of(model: nn.Module, x: Tensor, y: Tensor) -> float:
    var: dict[int, LayerVariance] = intra_class_variance(model, {3: "fc2"}, [(x, y)], 10)
    return var[3].total


@pytest.mark.parametrize(
    ("kind", "make", "measure"),
    [
        ("l1", lambda m: WeightPenalty(m, 1e-2, 1), lambda m, x, y: l1_of(m)),
        ("l2", lambda m: WeightPenalty(m, 1e-1, 2), lambda m, x, y: l2_of(m)),
        ("jacobian", lambda m: JacobianNorm(m, ["fc2"], 1.0), lambda m, x, y: jacobian_of(m, x)),
        (
            "vcl",
            lambda m: VarianceConstancy(m, ["act1"], 10.0, (torch.zeros(2, 64),), samples=8),
            lambda m, x, y: vcl_of(m, x),
        ),
        ("nsr", lambda m: NeuronSteadiness(m, {"fc2": 10.0}, 10), nsr_of),
    ],
)
def test_each_regularizer_at_a_large_strength_moves_its_quantity_down(kind, make, measure):
    vanilla, x, y = train_small(lambda m: NoRegularizer())
    regularized, _, _ = train_small(make)
    before, after = measure(vanilla, x, y), measure(regularized, x, y)
    assert after < 0.8 * before, (kind, before, after)


# ------------------------------------------------------------------ the loop and the hooks
def all_hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("kind", ["nsr", "jacobian", "vcl"])
def test_hooks_are_removed_when_training_fails(kind: str) -> None:
    x, y = digits()
    torch.manual_seed(0)
    model = MLP(64, [32], 10)
    layers = model.regularizable_layers()

    def batches(epoch: int) -> Iterator[Batch]:
        yield Batch((x[:32],), y[:32])
        raise RuntimeError("data source died")

    family = Family(batches, lambda split: 50.0, lambda: {})
    made: list[Regularizer] = []

    def make() -> Regularizer:
        reg = build(
            kind,
            model,
            layers=layers,
            regularized=[3],
            lambdas={3: 1.0},
            strength=0.1,
            num_classes=10,
            queue_batches=5,
            example_inputs=(x[:2],),
        )
        made.append(reg)
        assert all_hooks(model) > 0  # the regularizer is attached while training
        return reg

    opt = lambda extra: PlainSGD([*model.parameters(), *extra], lr=0.1)  # noqa: E731
    with pytest.raises(RuntimeError, match="data source died"):
        train(model, family, make, opt, 2, Reporter(nni_mode=False))
    assert made and all_hooks(model) == 0


def test_vcl_beta_is_trained_by_the_loop() -> None:
    x, y = digits()
    torch.manual_seed(0)
    model = MLP(64, [32], 10)
    reg = VarianceConstancy(model, ["act1"], 1.0, (x[:2],))
    opt = PlainSGD([*model.parameters(), *reg.parameters()], lr=0.1)
    model.train()
    train_step(model, reg, opt, Batch((x[:32],), y[:32]))
    assert not torch.equal(reg.betas[0].detach(), torch.ones(32))


def test_the_contract_names_every_regularizer_and_a_range_for_each_strength() -> None:
    assert set(contract.REGULARIZERS) == {"nsr", "l1", "l2", "jacobian", "vcl", "none"}
    assert set(contract.STRENGTH_RANGES) == set(contract.STRENGTH_KEYS.values())
    for low, high in contract.STRENGTH_RANGES.values():
        assert 0 < low < high


def test_the_penalty_adds_to_the_cross_entropy() -> None:
    # The loop's loss is ce + penalty: the regularizer changes the step, not only a report.
    x, y = digits()
    model = MLP(64, [32], 10)
    ce = F.cross_entropy(model(x[:32]), y[:32])
    reg = WeightPenalty(model, 1e-3, 1)
    assert float(reg.add_penalty(ce)) == pytest.approx(float(ce) + 1e-3 * l1_of(model), rel=1e-5)


@pytest.mark.parametrize("kind", contract.REGULARIZERS)
def test_build_gives_each_family_its_penalty(kind: str) -> None:
    x, y = digits()
    torch.manual_seed(0)
    model = MLP(64, [32], 10).train()
    reg = build(
        kind,
        model,
        layers=model.regularizable_layers(),
        regularized=[2, 3],
        lambdas={2: 1.0, 3: 1.0},
        strength=0.5,
        num_classes=10,
        queue_batches=5,
        example_inputs=(x[:2],),
    )
    reg.set_targets(y[:32])
    model(x[:32])
    penalty = float(reg.add_penalty(torch.zeros(())))
    assert (penalty == 0.0) == (kind == "none"), penalty
    expected = {
        "none": NoRegularizer,
        "l1": WeightPenalty,
        "l2": WeightPenalty,
        "jacobian": JacobianNorm,
        "vcl": VarianceConstancy,
        "nsr": NeuronSteadiness,
    }
    assert type(reg) is expected[kind]
    if kind in ("l1", "l2"):
        assert reg.p == int(kind[1])  # type: ignore[attr-defined]
    reg.remove()
