"""GNN trials of the paper's Table 3: GCN and GraphSAGE, 2-4 layers, NSR with the node as sample.

    python -m trials.gnn --model sage2 --dataset cora --data-root /path/to/datasets --layers 1

Layer numbering is the paper's (GraphSAGE₁ = NSR on the first layer): for a model with L graph
convolutions, layer k (1-based) is the output of the k-th convolution — post-ReLU for k < L (zeros
are "inactive" and left out of NSR), the logits for k = L. NSR on layer 1 is the default, the
paper's rule for GNNs. Training is full-batch (one Adam step per epoch over the whole graph), and
only the training nodes enter the penalty, the class means and the variance probe. The nodes are
split 6:2:2 at random by ``--split-seed``. Inside an NNI trial the search space overrides the flags.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trials.engine import Batch, Family, run_trial
from trials.graph_data import (
    GRAPH_DATASETS,
    Graph,
    import_pyg,
    load_graph,
    synthetic_graph,
    to_sparse_csr,
)
from trials.nsr import intra_class_variance
from trials.params import (
    TrialError,
    family_params,
    param,
    require_at_least,
    require_choice,
)
from trials.runtime import run_entry, start_trial

MODELS = {f"{kind}{depth}": (kind, depth) for kind in ("gcn", "sage") for depth in (2, 3, 4)}
ENTRY = "gnn"  # the configuration's entry name (trials/contract.py)


@dataclass(frozen=True)
class GNNParams(
    family_params(model=("sage2", MODELS), dataset=("cora", GRAPH_DATASETS), lambdas=range(1, 5))
):
    lr: float = param(0.01, "Adam learning rate")
    layers: str = param(
        "1",
        "layers the regularizer acts on (NSR, Jacobian, VCL): 'none', 'last', or a list like '1,2'",
    )
    weight_decay: float = param(5e-4, "Adam weight decay")
    hidden: int = param(64, "hidden features per GNN layer")
    dropout: float = param(0.5, "dropout before every graph convolution")
    synthetic: int = param(0, "N > 0: a random N-node graph instead of --dataset (tests only)")


def layer_indices(p: GNNParams) -> list[int]:
    """The model's regularizable layers: 1 .. L for L graph convolutions."""
    return list(range(1, MODELS[p.model][1] + 1))


class GNN(nn.Module):
    """L graph convolutions ``conv1..convL`` with a ReLU module ``act<k>`` after each hidden one.

    Sparse (CSR) input features take a sparse path through the first convolution: dropout on the
    stored values only, and its products as sparse x dense with ``conv1``'s own parameters, so
    nothing of the input's dense size is allocated. It computes what ``conv1`` computes (tested
    equal with dropout 0): GCN ``Â (X Wᵀ) + b``; GraphSAGE ``mean_{j→i}(X W_lᵀ) + b_l + X W_rᵀ``,
    the linear map moved before the mean aggregation (they commute), so the aggregation runs on
    ``hidden`` columns instead of the input's thousands. Dense input takes PyG's layers unchanged.
    """

    def __init__(
        self, kind: str, depth: int, in_dim: int, hidden: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        import_pyg()
        from torch_geometric.nn import GCNConv, SAGEConv

        sizes = [in_dim] + [hidden] * (depth - 1) + [num_classes]
        self.kind = kind
        self.depth = depth
        self.dropout = dropout
        for k in range(1, depth + 1):
            # cached: the graph is fixed (full-batch), so GCN's normalized adjacency is built once.
            conv = (
                GCNConv(sizes[k - 1], sizes[k], cached=True)
                if kind == "gcn"
                else SAGEConv(sizes[k - 1], sizes[k])
            )
            self.add_module(f"conv{k}", conv)
            if k < depth:
                # One ReLU module per layer, so a forward hook on act<k> sees exactly layer k.
                self.add_module(f"act{k}", nn.ReLU())
        # The first layer's propagation matrix for sparse input, built on first use; the graph is
        # fixed (full-batch), like GCNConv's cache. Not a buffer: it is not part of the state.
        self._propagation: tuple[Tensor, Tensor] | None = None  # (edge_index it was built for, A)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for k in range(1, self.depth + 1):
            if k == 1 and x.layout == torch.sparse_csr:
                # Does not call the conv1 module (its hooks would not fire): NSR never hooks it,
                # layer 1 is act1 (depth >= 2).
                x = self._sparse_first_conv(x, edge_index)  # (n, F_1)
            else:
                x = F.dropout(x, self.dropout, self.training)  # (n, F_{k-1})
                x = getattr(self, f"conv{k}")(x, edge_index)  # (n, F_k)
            if k < self.depth:
                x = getattr(self, f"act{k}")(x)  # (n, F_k)
        return x  # (n, num_classes)

    def _sparse_first_conv(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """``conv1`` on CSR features x: (n, F_0) -> (n, F_1), without densifying x."""
        if self.training and self.dropout > 0:
            # Dropout zeroes and rescales entries; the stored zeros stay zero either way.
            values = F.dropout(x.values(), self.dropout, training=True)  # (nnz,)
            x = torch.sparse_csr_tensor(
                x.crow_indices(), x.col_indices(), values, x.shape, check_invariants=False
            )
        prop = self._propagation_matrix(edge_index, x.shape[0])  # (n, n) sparse CSR
        conv = self.conv1
        if self.kind == "gcn":
            out = torch.sparse.mm(prop, x @ conv.lin.weight.t())  # (n, F_1)
            return out + conv.bias if conv.bias is not None else out
        neighbours = torch.sparse.mm(prop, x @ conv.lin_l.weight.t()) + conv.lin_l.bias
        return neighbours + x @ conv.lin_r.weight.t()  # (n, F_1)

    def _propagation_matrix(self, edge_index: Tensor, num_nodes: int) -> Tensor:
        """conv1's aggregation as an (n, n) CSR matrix: row i mixes the messages node i receives.

        GCN: PyG's own ``gcn_norm`` (self-loops, symmetric degree normalization), exactly what
        ``GCNConv`` aggregates with; GraphSAGE: the mean over in-edges (row i = 1/deg_i at each
        source j, 0 for a node without in-edges, duplicate edges counted like PyG's scatter-mean).
        """
        cached = self._propagation
        if cached is not None and cached[0] is edge_index:
            return cached[1]
        with torch.no_grad():
            if self.kind == "gcn":
                from torch_geometric.nn.conv.gcn_conv import gcn_norm

                conv = self.conv1
                index, weight = gcn_norm(
                    edge_index, None, num_nodes, conv.improved, conv.add_self_loops, conv.flow
                )
            else:
                index = edge_index
                degree = torch.bincount(index[1], minlength=num_nodes).clamp_min(1)  # (n,)
                weight = 1.0 / degree[index[1]].float()  # (E,)
            # Messages flow source (row 0) -> target (row 1): entry [target, source].
            coo = torch.sparse_coo_tensor(
                index.flip(0), weight, (num_nodes, num_nodes), check_invariants=False
            )
            matrix = to_sparse_csr(coo.coalesce())  # duplicates summed
        self._propagation = (edge_index, matrix)
        return matrix

    def regularizable_layers(self) -> dict[int, str]:
        """Paper layer index (1-based) -> module: hidden ones post-ReLU, the last the logits."""
        layers = {k: f"act{k}" for k in range(1, self.depth)}
        layers[self.depth] = f"conv{self.depth}"
        return layers


def validate(p: GNNParams) -> None:
    require_choice("model", p.model, MODELS)
    if p.synthetic == 0:
        require_choice("data set", p.dataset, GRAPH_DATASETS)
    require_at_least(p, {"epochs": 1, "hidden": 1, "queue_batches": 1, "synthetic": 0})
    if 0 < p.synthetic < 20:
        raise TrialError(f"synthetic={p.synthetic} must be 0 (off) or >= 20 nodes")
    if not p.lr > 0:
        raise TrialError(f"lr={p.lr} must be > 0")
    if not 0 <= p.weight_decay:
        raise TrialError(f"weight_decay={p.weight_decay} must be >= 0")
    if not 0 <= p.dropout < 1:
        raise TrialError(f"dropout={p.dropout} must be in [0, 1)")


@torch.no_grad()
def node_error(model: nn.Module, graph: Graph, index: Tensor) -> float:
    """Classification error in % over the nodes ``index``, in eval mode."""
    was_training = model.training
    model.eval()
    pred = model(graph.x, graph.edge_index)[index].argmax(dim=1)  # (N_idx,)
    model.train(was_training)
    return 100.0 * float((pred != graph.y[index]).sum()) / max(len(index), 1)


def graph_family(model: GNN, graph: Graph) -> Family:
    """Full-batch training: one step per epoch over the whole graph, the loss and every
    regularizer on the training nodes only (``Batch.index``)."""
    layers = model.regularizable_layers()
    y_train = graph.y[graph.train_idx]  # (N_train,)
    # The probe sees the training nodes only (the labelled samples), in eval mode.
    probe_batches = [((graph.x, graph.edge_index), y_train, graph.train_idx)]
    step = Batch((graph.x, graph.edge_index), y_train, graph.train_idx)
    nodes = {"val": graph.val_idx, "test": graph.test_idx}
    return Family(
        lambda epoch: (step,),
        lambda split: node_error(model, graph, nodes[split]),
        lambda: intra_class_variance(model, layers, probe_batches, graph.num_classes),
    )


def make_optimizer(model: nn.Module, extra: Sequence[Tensor], p: GNNParams) -> torch.optim.Adam:
    """Adam with weight decay on the model; a regularizer's own parameters (VCL's β) without."""
    groups: list[dict[str, Any]] = [{"params": list(model.parameters())}]
    if extra:
        groups.append({"params": list(extra), "weight_decay": 0.0})
    return torch.optim.Adam(groups, lr=p.lr, weight_decay=p.weight_decay)


def main(p: GNNParams, graph: Graph | None = None) -> dict[str, Any]:
    """Train one GNN as ``p`` says and return the final metrics (also reported to NNI).

    ``graph`` lets a caller (the benchmark) load a data set once for many runs; it must be the one
    ``p`` names.
    """
    regularized, device = start_trial(p, validate, layer_indices)
    kind, depth = MODELS[p.model]
    if graph is None:
        graph = (
            synthetic_graph(p.synthetic, split_seed=p.split_seed)
            if p.synthetic
            else load_graph(p.dataset, p.data_root, p.split_seed, p.download)
        )
    if p.regularizer == "jacobian" and graph.sparse_features:
        # The Jacobian is taken with respect to the input features, which autograd needs dense.
        graph = graph.with_features(graph.x.to_dense())
    graph = graph.to(device)
    torch.manual_seed(p.seed)  # the same initial weights whether or not the data was preloaded
    model = GNN(kind, depth, graph.num_features, p.hidden, graph.num_classes, p.dropout).to(device)
    return run_trial(
        p,
        ENTRY,
        model,
        graph_family(model, graph),
        regularized,
        graph.num_classes,
        (graph.x, graph.edge_index),
        lambda extra: make_optimizer(model, extra, p),
    )


def cli(argv: Sequence[str] | None = None) -> int:
    return run_entry(main, GNNParams, "trials.gnn", __doc__, argv)


if __name__ == "__main__":
    sys.exit(cli())
