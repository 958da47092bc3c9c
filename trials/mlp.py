"""MLP trials of the paper's Tables 1, 4 and 5: MLP-3/4/6/8/10 with NSR or a baseline regularizer,
optionally with batch norm and dropout.

    python -m trials.mlp --model mlp4 --dataset digits --layers 4 --lambda-4 7.4865
    python -m trials.mlp --regularizer l2 --l2-weight 1e-4
    python -m trials.mlp --batchnorm true --dropout 0.2 --layers 4 --lambda-4 7.4865

Layer numbering is the paper's: MLP-L has L layers counting the input, so MLP-4 = 784-256-100-10
and its layers 2, 3, 4 are the outputs of the first, second and third Linear (post-ReLU for 2 and
3, the logits for 4). ``--batchnorm`` puts a BatchNorm1d ``bn<i>`` between each hidden Linear and
its ReLU; ``--dropout P`` a Dropout ``drop<i>`` after each hidden ReLU (so NSR, hooked on the ReLU,
sees the responses before dropout). Inside an NNI trial the search space's parameters override
these flags.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from trials.data import IMAGE_DATASETS, load_image_dataset
from trials.engine import PlainSGD, run_trial, split_family
from trials.params import (
    TrialError,
    family_params,
    param,
    require_at_least,
    require_choice,
)
from trials.runtime import run_entry, start_trial

HIDDEN = {
    "mlp3": [100],
    "mlp4": [256, 100],
    "mlp6": [256, 128, 64, 32],
    "mlp8": [256, 128, 64, 32, 32, 16],
    "mlp10": [256, 128, 64, 64, 32, 32, 16, 16],
}
ENTRY = "mlp"  # the configuration's entry name (trials/contract.py)


@dataclass(frozen=True)
class MLPParams(
    family_params(model=("mlp4", HIDDEN), dataset=("digits", IMAGE_DATASETS), lambdas=range(2, 11))
):
    lr: float = param(0.01, "SGD learning rate")
    device: str = param("cpu", "cpu, cuda or auto (an MLP is fastest on the CPU)")
    batchnorm: bool = param(False, "BatchNorm1d before each hidden ReLU (the paper's Table 5)")
    dropout: float = param(0.0, "dropout probability after each hidden ReLU; 0 = none")
    batch_size: int = param(100, "mini-batch size")
    probe_samples: int = param(10_000, "training samples used to measure intra-class variance")


class MLP(nn.Sequential):
    """Linear ``fc1..fc{L-1}``, ReLU ``act<i>`` after each hidden one; Xavier-normal init.
    Optionally BatchNorm1d ``bn<i>`` before each hidden ReLU and Dropout ``drop<i>`` after it."""

    def __init__(
        self,
        input_dim: int,
        hidden: Sequence[int],
        num_classes: int,
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        modules: list[tuple[str, nn.Module]] = []
        sizes = [input_dim, *hidden]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
            modules.append((f"fc{i}", nn.Linear(n_in, n_out)))
            if batchnorm:
                modules.append((f"bn{i}", nn.BatchNorm1d(n_out)))
            modules.append((f"act{i}", nn.ReLU()))
            if dropout > 0:
                modules.append((f"drop{i}", nn.Dropout(dropout)))
        modules.append((f"fc{len(sizes)}", nn.Linear(sizes[-1], num_classes)))
        super().__init__(OrderedDict(modules))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def regularizable_layers(self) -> dict[int, str]:
        """Paper layer index -> module name: hidden ones post-ReLU, the last one the logits."""
        acts = [name for name, m in self.named_children() if isinstance(m, nn.ReLU)]
        last = [name for name, m in self.named_children() if isinstance(m, nn.Linear)][-1]
        layers = {k: name for k, name in enumerate(acts, start=2)}
        layers[len(acts) + 2] = last
        return layers


def validate(p: MLPParams) -> None:
    require_choice("model", p.model, HIDDEN)
    require_at_least(p, {"epochs": 1, "batch_size": 1, "queue_batches": 1, "probe_samples": 1})
    if not p.lr > 0:
        raise TrialError(f"lr={p.lr} must be > 0")
    if not 0 <= p.dropout < 1:
        raise TrialError(f"dropout={p.dropout} must be in [0, 1)")


def layer_indices(p: MLPParams) -> list[int]:
    """The paper's indices of the model's regularizable layers: 2 .. L for MLP-L."""
    return list(range(2, len(HIDDEN[p.model]) + 3))


def main(p: MLPParams) -> dict[str, Any]:
    """Train one MLP as ``p`` says and return the final metrics (also reported to NNI)."""
    regularized, device = start_trial(p, validate, layer_indices)
    splits = load_image_dataset(p.dataset, p.data_root, p.split_seed, p.download).to(device)
    model = MLP(splits.input_dim, HIDDEN[p.model], splits.num_classes, p.batchnorm, p.dropout).to(
        device
    )
    layers = model.regularizable_layers()
    return run_trial(
        p,
        ENTRY,
        model,
        split_family(model, splits, layers, p.batch_size, p.seed, p.probe_samples),
        regularized,
        splits.num_classes,
        (splits.train_x[:2],),
        lambda extra: PlainSGD([*model.parameters(), *extra], lr=p.lr),
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_entry(main, MLPParams, "trials.mlp", __doc__, argv)


if __name__ == "__main__":
    sys.exit(cli())
