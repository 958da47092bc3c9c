"""CIFAR-10 as uint8 tensors in memory, with the standard augmentation done on whole batches.

Files: torchvision's layout, ``<data_root>/cifar-10-batches-py/{data_batch_1..5,test_batch}`` (the
python pickles of https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz). When they are missing
and downloads are allowed, torchvision fetches them with a short socket timeout; offline, that fails
in seconds and the trial stops with one line saying where to put the directory.

The 50,000 training images are split 45,000 train / 5,000 validation by a fixed split seed (the
paper does not say; the validation set steers the search, the 10,000 test images never do).

Augmentation (pad 4 with zeros, random 32×32 crop, random horizontal flip) is one gather over the
whole batch on its device, not a per-image PIL pipeline: on a GPU it costs well under a millisecond.
"""

from __future__ import annotations

import pickle
import socket
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trials.data import Splits
from trials.params import TrialError

CIFAR_DIR = "cifar-10-batches-py"
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
CIFAR_VALIDATION = 5_000
# Per-channel mean and std of the CIFAR-10 training images, on the 0..1 scale.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
PAD = 4


def _missing(directory: Path) -> list[str]:
    return [name for name in CIFAR_FILES if not (directory / name).is_file()]


def _download(data_root: Path) -> str:
    """Fetch and unpack CIFAR-10 through torchvision into ``data_root``; '' or why not."""
    from torchvision.datasets import CIFAR10

    created = [d for d in (data_root, *data_root.parents) if not d.exists()]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)  # offline or firewalled: fail in seconds, never hang a trial
    try:
        CIFAR10(str(data_root), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one clear line
        for d in created:  # deepest first: leave no empty folders behind
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        return f"offline, and the download failed: {type(exc).__name__}"
    finally:
        socket.setdefaulttimeout(previous)
    return ""


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)  # (10000, 3, 32, 32)
    y = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)  # (10000,)
    return x, y


def load_cifar10(data_root: str, split_seed: int = 0, download: bool = True) -> Splits:
    root = Path(data_root).expanduser()
    directory = root / CIFAR_DIR
    if _missing(directory):
        failure = _download(root) if download else "download disabled"
        if failure:
            raise TrialError(
                f"data set 'cifar10' not found ({failure}): put the unpacked {CIFAR_DIR}/ "
                f"({', '.join(CIFAR_FILES)}) in {root} (or set --data-root / NSR_DATA_ROOT)"
            )
    try:
        parts = [_read_batch(directory / name) for name in CIFAR_FILES]
    except (OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as exc:
        raise TrialError(f"data set 'cifar10': cannot read {directory}: {exc}") from None
    train_x = torch.from_numpy(np.concatenate([p[0] for p in parts[:5]]))  # (50000, 3, 32, 32)
    train_y = torch.from_numpy(np.concatenate([p[1] for p in parts[:5]]))  # (50000,)
    perm = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(split_seed))
    val, train = perm[:CIFAR_VALIDATION], perm[CIFAR_VALIDATION:]
    test_x, test_y = torch.from_numpy(parts[5][0]), torch.from_numpy(parts[5][1])
    return Splits(
        train_x[train], train_y[train], train_x[val], train_y[val], test_x, test_y, 10
    )


def synthetic_cifar(n: int, seed: int = 0, num_classes: int = 10) -> Splits:
    """``n`` random CIFAR-shaped uint8 images with random labels, split 60:20:20.

    For tests and speed benchmarks only: the images carry no signal, so errors are near chance.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)  # (n, 3, 32, 32)
    y = torch.randint(0, num_classes, (n,), generator=gen)  # (n,)
    n_val = n_test = max(n // 5, 1)
    n_train = n - n_val - n_test
    return Splits(
        x[:n_train],
        y[:n_train],
        x[n_train : n_train + n_val],
        y[n_train : n_train + n_val],
        x[n_train + n_val :],
        y[n_train + n_val :],
        num_classes,
    )


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Pad-4 random crop and random horizontal flip of a uint8 batch, as one gather.

    x: (B, C, H, W) uint8 on any device; ``generator`` lives on the same device. Returns
    (B, C, H, W) in channels-last memory order (what the gather produces, and what cuDNN's fastest
    convolutions want).
    """
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (PAD, PAD, PAD, PAD))  # (B, C, H+8, W+8), zero padding
    dy = torch.randint(0, 2 * PAD + 1, (b, 1, 1), generator=generator, device=dev)  # (B, 1, 1)
    dx = torch.randint(0, 2 * PAD + 1, (b, 1, 1), generator=generator, device=dev)  # (B, 1, 1)
    flip = torch.rand((b, 1, 1), generator=generator, device=dev) < 0.5  # (B, 1, 1)
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = dy + ar_h.view(1, h, 1)  # (B, H, 1)
    # A flip is just reading the crop's columns right to left: fold it into the same gather.
    cols = dx + torch.where(flip, (w - 1 - ar_w).view(1, 1, w), ar_w.view(1, 1, w))  # (B, 1, W)
    batch = torch.arange(b, device=dev).view(b, 1, 1)  # (B, 1, 1)
    out = padded[batch, :, rows, cols]  # advanced indices first: (B, H, W, C)
    return out.permute(0, 3, 1, 2)  # (B, C, H, W), channels-last strides
