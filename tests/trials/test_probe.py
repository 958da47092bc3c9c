"""The variance probe behind the layer rule: on a ReLU layer a zero response means "inactive"
and is left out of the class means and variances; the logits keep every response."""

from __future__ import annotations

import torch
from torch import nn

from trials.nsr import intra_class_variance


def direct(x: torch.Tensor, y: torch.Tensor, classes: int, skip_zeros: bool) -> float:
    """Σ_n Σ_j α_j Var(X_{n,j}), population variance over the (active) responses."""
    total = 0.0
    for n in range(x.shape[1]):
        for j in range(classes):
            col = x[y == j, n].double()
            alpha = float((y == j).sum()) / len(y)
            if skip_zeros:
                col = col[col != 0]
            if len(col) > 1:
                total += alpha * float(col.var(unbiased=False))
    return total


def test_relu_zeros_are_left_out_of_the_probe_but_not_for_the_logits() -> None:
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(60, 5, generator=gen) * 3 + 1
    y = torch.randint(0, 3, (60,), generator=gen)
    model = nn.Sequential()
    model.add_module("act", nn.ReLU())  # a hidden layer: post-ReLU, many zeros
    model.add_module("out", nn.Identity())  # stands for the logits: zeros are real values
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 60, 16)]
    got = intra_class_variance(model, {2: "act", 3: "out"}, batches, num_classes=3)
    relu_x = torch.relu(x)
    assert (relu_x == 0).float().mean() > 0.2  # the case matters: a quarter are inactive
    expected_hidden = direct(relu_x, y, 3, skip_zeros=True)
    counted_zeros = direct(relu_x, y, 3, skip_zeros=False)
    assert abs(got[2].total - expected_hidden) < 1e-9
    assert abs(got[2].total - counted_zeros) > 1.0  # counting zeros would change the answer
    assert abs(got[3].total - direct(relu_x, y, 3, skip_zeros=False)) < 1e-9
