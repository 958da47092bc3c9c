"""ResNet-18 (CIFAR variant) and VGG-19 with batch norm, taking uint8 images, with numbered layers.

Layer numbering (an index over the model's regularizable outputs, 1-based, the logits the highest):

* ResNet-18: layers 1-4 = the outputs of the four residual stages (``layer<s>``'s last block,
  post-ReLU; 64, 128, 256, 512 channels), layer 5 = the logits.
* VGG-19: layers 1-5 = the outputs of the five convolutional stages (each stage's last conv+BN+ReLU,
  before its max-pool; 64, 128, 256, 512, 512 channels), layer 6 = the logits.

A convolutional output (B, C, H, W) counts as C neurons, each responding with its spatial mean
(trials/nsr.py). Stage 4 of ResNet-18 averaged over space *is* the pooled feature vector that feeds
the classifier (the paper's "penultimate layer"). Every hooked stage output is its own ``nn.ReLU``
module, so NSR and the probe know to leave inactive (zero) channels out.

Both models start with a :class:`Normalize` module that takes uint8 images, so data stays uint8 in
memory (4x smaller) and evaluation, the probe and training all feed the model the same tensors.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from trials.cifar import CIFAR_MEAN, CIFAR_STD

VGG19_STAGES = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)


class Normalize(nn.Module):
    """uint8 images -> float, per-channel standardized (CIFAR-10 statistics)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", 255.0 * torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", 255.0 * torch.tensor(CIFAR_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x.float() - self.mean) / self.std  # (B, 3, H, W)


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN, identity (or 1x1 conv+BN) shortcut, ReLU after the sum (``relu_out``)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        # Not in-place: it is the block output that hooks read, and the next block's shortcut
        # keeps using it.
        self.relu_out = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))  # (B, C_out, H', W')
        out = self.bn2(self.conv2(out))  # (B, C_out, H', W')
        return self.relu_out(out + self.shortcut(x))  # (B, C_out, H', W')


class ResNet18(nn.Module):
    """He et al.'s ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool, stages of 2 blocks."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        widths, c_in = (64, 128, 256, 512), 64
        for s, width in enumerate(widths, start=1):
            stride = 1 if s == 1 else 2
            blocks = [BasicBlock(c_in, width, stride), BasicBlock(width, width, 1)]
            self.add_module(f"layer{s}", nn.Sequential(*blocks))
            c_in = width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(self.normalize(x))  # (B, 64, 32, 32)
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))  # (B, 512, 4, 4)
        return self.fc(self.pool(h).flatten(1))  # (B, num_classes)

    def regularizable_layers(self) -> dict[int, str]:
        layers = {s: f"layer{s}.1.relu_out" for s in range(1, 5)}
        layers[5] = "fc"
        return layers


class VGG19(nn.Module):
    """VGG-19 with BN for CIFAR: 16 conv+BN+ReLU in 5 stages, each followed by a 2x2 max-pool,
    then one linear classifier on the 512 pooled features (the CIFAR variant of Liu et al. 2018)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = Normalize()
        c_in = 3
        for s, widths in enumerate(VGG19_STAGES, start=1):
            modules: list[tuple[str, nn.Module]] = []
            for i, width in enumerate(widths, start=1):
                modules += [
                    (f"conv{i}", nn.Conv2d(c_in, width, 3, padding=1, bias=False)),
                    (f"bn{i}", nn.BatchNorm2d(width)),
                    # The stage's last ReLU is hooked: keep it out of place (see BasicBlock).
                    (f"relu{i}", nn.ReLU(inplace=i < len(widths))),
                ]
                c_in = width
            self.add_module(f"stage{s}", nn.Sequential(OrderedDict(modules)))
        self.pool = nn.MaxPool2d(2)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.normalize(x)  # (B, 3, 32, 32)
        for s in range(1, len(VGG19_STAGES) + 1):
            h = self.pool(getattr(self, f"stage{s}")(h))  # (B, C_s, 32 / 2^s, 32 / 2^s)
        return self.classifier(h.flatten(1))  # (B, 512) -> (B, num_classes)

    def regularizable_layers(self) -> dict[int, str]:
        layers = {
            s: f"stage{s}.relu{len(widths)}" for s, widths in enumerate(VGG19_STAGES, start=1)
        }
        layers[len(VGG19_STAGES) + 1] = "classifier"
        return layers


CNN_MODELS: dict[str, type[nn.Module]] = {"resnet18": ResNet18, "vgg19": VGG19}
CNN_LAYERS = {"resnet18": [1, 2, 3, 4, 5], "vgg19": [1, 2, 3, 4, 5, 6]}
