"""The training loop's own optimizer: PlainSGD is torch.optim.SGD's update, bit for bit."""

from __future__ import annotations

import subprocess
import sys

import torch
import torch.nn.functional as F
from nni_runner import REPO

from trials.engine import PlainSGD
from trials.mlp import HIDDEN, MLP
from trials.nsr import NeuronSteadiness


def _train(opt_cls: type, steps: int = 30) -> MLP:
    torch.manual_seed(0)
    model = MLP(64, HIDDEN["mlp4"], 10)
    # NSR on a hidden layer too, so the gradients are not those of the cross-entropy alone.
    reg = NeuronSteadiness(model, {"act1": 0.5, "fc3": 2.0}, 10)
    opt = opt_cls(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(steps * 20, 64, generator=gen), torch.randint(0, 10, (steps * 20,))
    for i in range(0, len(x), 20):
        reg.set_targets(y[i : i + 20])
        loss = reg.add_penalty(F.cross_entropy(model(x[i : i + 20]), y[i : i + 20]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model


def test_plain_sgd_equals_torch_sgd_bit_for_bit() -> None:
    ours, theirs = _train(PlainSGD), _train(torch.optim.SGD)
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b), name
    # ... and training moved the weights: the comparison above is not of two untouched models.
    torch.manual_seed(0)
    start = MLP(64, HIDDEN["mlp4"], 10)
    assert not torch.equal(start.fc1.weight, ours.fc1.weight)


def test_zero_grad_and_frozen_parameters() -> None:
    model = MLP(64, [8], 10)
    model.fc1.bias.requires_grad_(False)  # a frozen parameter is never updated
    frozen = model.fc1.bias.clone()
    opt = PlainSGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(torch.rand(4, 64)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert torch.equal(model.fc1.bias, frozen)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in opt.params)
    opt.zero_grad()
    assert all(p.grad is None for p in opt.params)
    opt.step()  # no gradients at all: a no-op, not an error


def test_an_mlp_trial_does_not_import_torch_dynamo() -> None:
    # torch.optim's constructors import torch._dynamo (~1 s); the MLP trial's start-up avoids it.
    code = (
        "import sys; from trials.mlp import cli; cli(['--epochs', '1', '--probe-samples', '50']); "
        "print('dynamo' if 'torch._dynamo' in sys.modules else 'clean', file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "clean"


def test_the_loop_measures_the_test_error_on_the_best_validation_epochs_state() -> None:
    from trials.engine import Batch, Family, train
    from trials.regularizers import NoRegularizer
    from trials.report import Reporter

    torch.manual_seed(0)
    model = MLP(8, [4], 3)
    x, y = torch.rand(16, 8), torch.randint(0, 3, (16,))
    val_errors = iter([30.0, 10.0, 20.0])  # epoch 2 is the best
    states: list[dict[str, torch.Tensor]] = []

    def evaluate(split: str) -> float:
        state = {k: v.clone() for k, v in model.state_dict().items()}
        if split == "val":
            states.append(state)
            return next(val_errors)
        # The test error is 0 only on epoch 2's weights (the weights change every epoch).
        same = all(torch.equal(state[k], states[1][k]) for k in state)
        return 0.0 if same else 100.0

    family = Family(lambda epoch: [Batch((x,), y)], evaluate, lambda: {})
    metrics = train(
        model,
        family,
        NoRegularizer,
        lambda extra: PlainSGD(model.parameters(), lr=0.5),
        3,
        Reporter(nni_mode=False),
    )
    assert not all(torch.equal(states[1][k], states[2][k]) for k in states[1])
    assert (metrics["best_epoch"], metrics["default"], metrics["test_error"]) == (2, 10.0, 0.0)
    assert metrics["epochs_run"] == 3
