"""Graph data sets for the GNN trials, read offline from raw files, split 6:2:2 by a split seed.

Files are looked up under the data root (``--data-root``, env ``NSR_DATA_ROOT``) in the layout the
torch_geometric classes use, so a root prepared for PyG works as is::

    <root>/planetoid/Cora/raw/ind.cora.{x,tx,allx,y,ty,ally,graph,test.index}  (+ CiteSeer, PubMed)
    <root>/amazon/Photo/raw/amazon_electronics_photo.npz                        (+ Computers)
    <root>/wikics/raw/data.json

Bag-of-words features (the Planetoid sets: 1-2 % non-zero) are kept as a sparse CSR matrix, and the
GNN's first layer multiplies them as sparse x dense: a dense copy of CiteSeer's 3,327 x 3,703
features costs ~200 ms per dropout call and ~45 ms per product on one core, the sparse path ~5 ms.
Denser features (WikiCS's 300 embeddings) stay dense.

The raw files are parsed with torch_geometric's own readers, but nothing is written next to them
(no ``processed/`` directory): a read-only root (e.g. a shared data set mount) works, and two trials
running at once never race on a half-written cache. When files are missing and downloads are
allowed, they are fetched from the URLs torch_geometric uses, with a socket timeout — offline this
fails in seconds and the trial stops with one line saying which files to put where.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
import warnings
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

import torch
from torch import Tensor

from trials.params import TrialError

PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
AMAZON_URL = "https://github.com/shchur/gnn-benchmark/raw/master/data/npz"
WIKICS_URL = "https://github.com/pmernyei/wiki-cs-dataset/raw/master/dataset"
PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
DOWNLOAD_TIMEOUT_S = 15
#: Features with at most this fraction of non-zeros are stored sparse (CSR). A sparse product wins
#: well above this (Cora, 1.3 %: 3.6 ms against 25 ms forward + backward); 10 % leaves a margin.
SPARSE_DENSITY = 0.10


@dataclass(frozen=True)
class GraphSource:
    """Where a data set's raw files live under the root, and where they can be downloaded from."""

    raw_dir: str  # relative to the data root
    files: tuple[str, ...]
    url: str
    kind: str  # "planetoid" | "npz" | "wikics"
    prefix: str = ""  # Planetoid's file prefix (ind.<prefix>.x)


def _planetoid(name: str) -> GraphSource:
    prefix = name.lower()
    files = tuple(f"ind.{prefix}.{part}" for part in PLANETOID_PARTS)
    return GraphSource(f"planetoid/{name}/raw", files, PLANETOID_URL, "planetoid", prefix)


def _amazon(name: str) -> GraphSource:
    return GraphSource(
        f"amazon/{name}/raw", (f"amazon_electronics_{name.lower()}.npz",), AMAZON_URL, "npz"
    )


GRAPH_DATASETS: dict[str, GraphSource] = {
    "cora": _planetoid("Cora"),
    "citeseer": _planetoid("CiteSeer"),
    "pubmed": _planetoid("PubMed"),
    "amazon-photo": _amazon("Photo"),
    "amazon-computers": _amazon("Computers"),
    "wikics": GraphSource("wikics/raw", ("data.json",), WIKICS_URL, "wikics"),
}


@dataclass(frozen=True)
class Graph:
    """One graph, its labels, and a 6:2:2 node split (index tensors into the nodes)."""

    x: Tensor  # (num_nodes, F) float32 features, dense (strided) or sparse CSR
    edge_index: Tensor  # (2, E) int64
    y: Tensor  # (num_nodes,) int64
    train_idx: Tensor  # (N_train,) int64
    val_idx: Tensor  # (N_val,)
    test_idx: Tensor  # (N_test,)
    num_classes: int

    @property
    def num_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def sparse_features(self) -> bool:
        return self.x.layout == torch.sparse_csr

    def with_features(self, x: Tensor) -> Graph:
        """The same graph and split with other node features (e.g. a dense copy, for tests)."""
        return replace(self, x=x)

    def to(self, device: torch.device) -> Graph:
        return Graph(
            self.x.to(device),
            self.edge_index.to(device),
            self.y.to(device),
            self.train_idx.to(device),
            self.val_idx.to(device),
            self.test_idx.to(device),
            self.num_classes,
        )


def random_split(num_nodes: int, split_seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Random 6:2:2 train/validation/test node split fixed by ``split_seed`` (the paper's)."""
    perm = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(split_seed))  # (n,)
    n_train, n_val = int(0.6 * num_nodes), int(0.2 * num_nodes)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


def _missing(directory: Path, files: tuple[str, ...]) -> list[str]:
    return [f for f in files if not (directory / f).is_file()]


def _download(source: GraphSource, directory: Path) -> str:
    """Fetch the missing raw files into ``directory``; '' on success, else why not (one phrase)."""
    created = [d for d in (directory, *directory.parents) if not d.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name in _missing(directory, source.files):
            partial = directory / f"{name}.part"
            # urlopen's timeout bounds every socket operation: offline, this fails in seconds.
            with urllib.request.urlopen(f"{source.url}/{name}", timeout=DOWNLOAD_TIMEOUT_S) as resp:
                with open(partial, "wb") as out:
                    shutil.copyfileobj(resp, out)
            partial.replace(directory / name)  # never leave a truncated file under the real name
    except Exception as exc:  # noqa: BLE001 - any download failure becomes one clear line
        for d in created:  # deepest first: leave no empty folders behind in the data root
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        return f"offline, and the download failed: {type(exc).__name__}"
    return ""


def import_pyg() -> None:
    """Import torch_geometric once, without the FutureWarning it triggers in torch.jit.

    Deferred to first use (PyG's import costs ~1 s that a bad-input error does not need), and quiet
    so that a trial's stderr carries only its own lines.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import torch_geometric  # noqa: F401


def _read(source: GraphSource, directory: Path) -> tuple[Tensor, Tensor, Tensor]:
    """(x, edge_index, y) from the raw files, with torch_geometric's readers; undirected edges."""
    import_pyg()
    from torch_geometric.utils import to_undirected

    if source.kind == "planetoid":
        from torch_geometric.io import read_planetoid_data

        data = read_planetoid_data(str(directory), source.prefix)
        return data.x, data.edge_index, data.y
    if source.kind == "npz":
        from torch_geometric.io import read_npz

        data = read_npz(str(directory / source.files[0]), to_undirected=True)
        return data.x, data.edge_index, data.y
    with open(directory / source.files[0]) as f:
        raw = json.load(f)
    x = torch.tensor(raw["features"], dtype=torch.float32)  # (n, 300)
    y = torch.tensor(raw["labels"], dtype=torch.int64)  # (n,)
    edges = list(chain.from_iterable([(i, j) for j in js] for i, js in enumerate(raw["links"])))
    edge_index = torch.tensor(edges, dtype=torch.int64).t().contiguous()  # (2, E)
    return x, to_undirected(edge_index, num_nodes=x.shape[0]), y


def load_graph(name: str, data_root: str, split_seed: int = 0, download: bool = True) -> Graph:
    """The named graph with a 6:2:2 split, or a :class:`TrialError` saying where its files go."""
    if name not in GRAPH_DATASETS:
        raise TrialError(f"unknown data set {name!r}; allowed: {', '.join(GRAPH_DATASETS)}")
    source = GRAPH_DATASETS[name]
    directory = Path(data_root).expanduser() / source.raw_dir
    if _missing(directory, source.files):
        failure = _download(source, directory) if download else "download disabled"
        if failure:
            raise TrialError(
                f"data set {name!r} not found ({failure}): put {', '.join(source.files)} "
                f"in {directory} (or set --data-root / NSR_DATA_ROOT to a root with "
                f"{source.raw_dir}/)"
            )
    try:
        x, edge_index, y = _read(source, directory)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise TrialError(f"data set {name!r}: cannot read {directory}: {exc}") from None
    train_idx, val_idx, test_idx = random_split(int(x.shape[0]), split_seed)
    return Graph(
        compact_features(x.float()),
        edge_index,
        y.long(),
        train_idx,
        val_idx,
        test_idx,
        int(y.max()) + 1,
    )


def to_sparse_csr(x: Tensor) -> Tensor:
    """``x`` (n, F) as a CSR matrix, without torch's "sparse CSR is in beta" warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return x.to_sparse_csr()


def compact_features(x: Tensor) -> Tensor:
    """``x`` as CSR when at most ``SPARSE_DENSITY`` of it is non-zero, else unchanged (dense)."""
    if x.layout != torch.strided or x.numel() == 0:
        return x
    if float(torch.count_nonzero(x)) > SPARSE_DENSITY * x.numel():
        return x
    return to_sparse_csr(x)


def synthetic_graph(
    num_nodes: int, num_classes: int = 4, num_features: int = 16, seed: int = 0, split_seed: int = 0
) -> Graph:
    """A small random graph with learnable structure, for tests and smoke runs (clearly not data).

    Features are a noisy one-hot of the class and edges prefer same-class endpoints, so a GNN can
    beat chance on it: a test can check that training actually lowers the error.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, num_classes, (num_nodes,), generator=gen)  # (n,)
    x = torch.randn(num_nodes, num_features, generator=gen)  # (n, F)
    x[torch.arange(num_nodes), y % num_features] += 2.0
    src = torch.randint(0, num_nodes, (4 * num_nodes,), generator=gen)  # (4n,)
    dst = torch.randint(0, num_nodes, (4 * num_nodes,), generator=gen)  # (4n,)
    keep = (y[src] == y[dst]) | (torch.rand(4 * num_nodes, generator=gen) < 0.2)  # homophily
    edge_index = torch.stack([src[keep], dst[keep]])  # (2, E')
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)  # undirected, (2, 2E')
    train_idx, val_idx, test_idx = random_split(num_nodes, split_seed)
    return Graph(x, edge_index, y, train_idx, val_idx, test_idx, num_classes)
