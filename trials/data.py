"""Image data sets as tensors held in memory (no per-sample PIL pipeline).

``digits`` (scikit-learn's bundled 8×8 digits) is the offline default. ``mnist`` and
``fashion-mnist`` read the four IDX files (``*.gz`` or plain) from the first place that has them:
``<data_root>/<name>/``, torchvision's layout ``<data_root>/<MNIST|FashionMNIST>/raw/``, or Debian's
``/usr/share/datasets/<name>/`` (package ``dataset-fashion-mnist``). Where none has them,
torchvision
downloads them into the torchvision layout (with a short socket timeout); offline, that fails fast
and the trial stops with one line that says where to put which files.

Decoded arrays are cached as ``.npy`` under the cache dir (``decoded``), keyed by the source file's
path, size and mtime and by ``DECODE_VERSION``, so a trial reads its data set without the gzip or
CSV decode; ``NSR_DATA_CACHE=0`` turns the cache off. A warm-trial server (``trials/warm_server``)
also keeps them in memory (``keep_decoded``), for the trials it forks.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from trials.params import TrialError, cache_root, default_data_root

IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist")
IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
TORCHVISION_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
# MNIST: 60,000 training images -> 50,000 train / 10,000 validation (the paper's split).
MNIST_VALIDATION = 10_000
#: Part of every decoded-array cache key: bump it when a decoder's output changes.
DECODE_VERSION = 1

_kept: dict[tuple[str, int, int, str], np.ndarray] | None = None  # in-memory, warm server only


def keep_decoded() -> None:
    """Keep every array ``decoded`` returns in this process's memory too (the warm server does,
    so that the trials it forks share them)."""
    global _kept
    if _kept is None:
        _kept = {}


def decoded(path: Path, decode: Callable[[Path], np.ndarray]) -> np.ndarray:
    """``decode(path)``, read from the ``.npy`` cache when the source file is unchanged (same
    resolved path, size, mtime, decoder and ``DECODE_VERSION``), else decoded and cached.

    The array is read-only. A cache that cannot be read or written is decoded around, never an
    error: the cache only saves time."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, decode.__name__)
    if _kept is not None and key in _kept:
        return _kept[key]
    array = None
    target = None
    if os.environ.get("NSR_DATA_CACHE", "1") != "0":
        digest = hashlib.sha256(repr((key, DECODE_VERSION)).encode()).hexdigest()[:24]
        target = cache_root() / "decoded" / f"{path.name.split('.')[0]}-{digest}.npy"
        try:
            array = np.load(target, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            array = None
    if array is None:
        array = decode(path)
        if target is not None:
            _write_npy(target, array)
    array.setflags(write=False)
    if _kept is not None:
        _kept[key] = array
    return array


def _write_npy(target: Path, array: np.ndarray) -> None:
    # Written beside it, then renamed: a concurrent reader sees the whole file or none.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Splits:
    """Features and int64 labels for train / validation / test, held in memory.

    MLPs get flat float32 features in [0, 1] (N, D); CNNs get uint8 images (N, 3, 32, 32),
    normalized per batch on the device.
    """

    train_x: Tensor  # (N_train, D)
    train_y: Tensor  # (N_train,)
    val_x: Tensor  # (N_val, D)
    val_y: Tensor  # (N_val,)
    test_x: Tensor  # (N_test, D)
    test_y: Tensor  # (N_test,)
    num_classes: int

    @property
    def input_dim(self) -> int:
        return int(self.train_x.shape[1])

    def to(self, device: torch.device) -> Splits:
        moved = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "num_classes"}
        return Splits(**{k: t.to(device) for k, t in moved.items()}, num_classes=self.num_classes)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def idx_candidates(name: str, data_root: str) -> list[Path]:
    root = Path(data_root).expanduser()
    return [
        root / name,
        root / TORCHVISION_DIRS[name] / "raw",
        Path("/usr/share/datasets") / name,
    ]


def _find_idx_dir(name: str, data_root: str, download: bool) -> Path:
    candidates = idx_candidates(name, data_root)
    for directory in candidates:
        if all(_idx_path(directory, stem) for stem in IDX_FILES.values()):
            return directory
    failure = "download disabled"
    if download:
        failure = _download(name, data_root)
        if not failure:
            return candidates[1]
    files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    where = "; ".join(str(c) for c in candidates)
    hint = " (or `apt-get install dataset-fashion-mnist`)" if name == "fashion-mnist" else ""
    raise TrialError(
        f"data set {name!r} not found ({failure}): put {files} in one of: {where}{hint}"
    )


def _download(name: str, data_root: str) -> str:
    """Fetch through torchvision into ``<data_root>/<MNIST|FashionMNIST>/raw``; '' or why not."""
    import socket

    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)  # offline or firewalled: fail in seconds, never hang a trial
    try:
        cls(str(Path(data_root).expanduser()), train=True, download=True)
        cls(str(Path(data_root).expanduser()), train=False, download=True)
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one clear line
        return f"offline, and the download failed: {type(exc).__name__}"
    finally:
        socket.setdefaulttimeout(previous)
    return ""


def _idx_path(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _split_indices(n: int, n_val: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of ``n`` examples.

    A fixed split seed, independent of the training seed: all trials validate on the same images.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed)).numpy()
    return perm[n_val:], perm[:n_val]


def load_idx_dataset(name: str, data_root: str, split_seed: int, download: bool = True) -> Splits:
    directory = _find_idx_dir(name, data_root, download)
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = _idx_path(directory, stem)
        assert path is not None
        try:
            arrays[key] = decoded(path, _read_idx)
        except (OSError, EOFError, ValueError) as exc:
            raise TrialError(f"data set {name!r}: cannot read {path}: {exc}") from None
    to_x = lambda a: torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255.0)  # noqa: E731
    to_y = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    # Split the uint8 images, then convert each part: the same floats as converting first
    # (elementwise), for a quarter of the bytes gathered (~0.15 s of every MNIST trial's start).
    train, val = _split_indices(len(arrays["train_x"]), MNIST_VALIDATION, split_seed)
    tx, vx = (to_x(arrays["train_x"][i]) for i in (train, val))
    ty, vy = (to_y(arrays["train_y"][i]) for i in (train, val))
    return Splits(tx, ty, vx, vy, to_x(arrays["test_x"]), to_y(arrays["test_y"]), 10)


def digits_csv() -> Path:
    # Read scikit-learn's bundled CSV directly: `import sklearn.datasets` costs ~2 s of SciPy
    # imports per trial process, which is most of a quickstart trial's start-up.
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise TrialError("data set 'digits' needs scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise TrialError(
            f"data set 'digits': scikit-learn's {path} is missing; reinstall scikit-learn"
        )
    return path


def _read_digits(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", dtype=np.float32)  # (1797, 65): pixels, label


def load_digits_dataset(split_seed: int) -> Splits:
    table = decoded(digits_csv(), _read_digits)
    x = torch.from_numpy(table[:, :-1] / 16.0)  # (1797, 64), pixels 0..16
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    # 1,797 images: 60 % train, 20 % validation, 20 % test, by the fixed split seed.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(split_seed))
    n_val = n_test = len(x) // 5
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    return Splits(x[train], y[train], x[val], y[val], x[test], y[test], 10)


def load_image_dataset(
    name: str, data_root: str | None = None, split_seed: int = 0, download: bool = True
) -> Splits:
    if name not in IMAGE_DATASETS:
        raise TrialError(f"unknown data set {name!r}; allowed: {', '.join(IMAGE_DATASETS)}")
    if name == "digits":
        return load_digits_dataset(split_seed)
    return load_idx_dataset(name, data_root or default_data_root(), split_seed, download)


def decode_image_dataset(name: str, data_root: str | None = None) -> bool:
    """Decode ``name``'s files into the cache (``decoded``) without building any tensor, nor
    downloading; False where the data set is not there (its trial will say so)."""
    try:
        if name == "digits":
            decoded(digits_csv(), _read_digits)
            return True
        if name not in IMAGE_DATASETS:
            return False
        directory = _find_idx_dir(name, data_root or default_data_root(), download=False)
        for stem in IDX_FILES.values():
            path = _idx_path(directory, stem)
            if path is not None:
                decoded(path, _read_idx)
    except (TrialError, OSError, EOFError, ValueError):
        return False
    return True
