"""Decoded data sets are cached as .npy, keyed by the source file and the decoder's version."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from trials import data


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NSR_DATA_CACHE", raising=False)
    return tmp_path / "cache" / "nsr-search" / "decoded"


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, n_train: int = 10_010, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    folder = root / "mnist"
    folder.mkdir(parents=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, n_train))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, n_test))


def test_the_second_load_reads_the_cache_and_gives_the_same_tensors(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mnist(tmp_path / "data")
    first = data.load_image_dataset("mnist", str(tmp_path / "data"), download=False)
    assert len(list(cache.glob("*.npy"))) == 4

    def no_gzip(*_args: object, **_kw: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(gzip, "open", no_gzip)
    second = data.load_image_dataset("mnist", str(tmp_path / "data"), download=False)
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert second.train_x.shape == (10, 784) and second.val_x.shape == (10_000, 784)


def test_a_changed_source_file_or_a_broken_cache_file_is_decoded_again(
    tmp_path: Path, cache: Path
) -> None:
    source = tmp_path / "a.idx"
    source.write_bytes(b"x")
    calls = []

    def decode(path: Path) -> np.ndarray:
        calls.append(path)
        return np.frombuffer(path.read_bytes(), dtype=np.uint8)

    assert data.decoded(source, decode).tolist() == [120]
    assert data.decoded(source, decode).tolist() == [120] and len(calls) == 1
    source.write_bytes(b"yz")  # new size and mtime: a new key
    os.utime(source, ns=(1, 1))
    assert data.decoded(source, decode).tolist() == [121, 122] and len(calls) == 2
    for npy in cache.glob("*.npy"):
        npy.write_bytes(b"not an npy file")
    assert data.decoded(source, decode).tolist() == [121, 122] and len(calls) == 3
    assert not data.decoded(source, decode).flags.writeable


def test_the_cache_can_be_switched_off(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NSR_DATA_CACHE", "0")
    first = data.load_image_dataset("digits")
    assert not cache.exists()
    monkeypatch.delenv("NSR_DATA_CACHE")
    second = data.load_image_dataset("digits")
    assert len(list(cache.glob("digits-*.npy"))) == 1
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)
