"""GraphSAGE-2 on Cora: vanilla vs NSR on layer 1 (the paper's GraphSAGE₁), 5 seeds each.

    .venv/bin/python benchmarks/gnn.py --data-root ../shared/datasets

λ comes from a small search on the validation error (a grid over the paper's [0.01, 100] range,
on search seeds disjoint from the 5 evaluation seeds), then both variants train with 5 seeds on the
same 6:2:2 split and the script prints the mean ± std test error (at the best validation epoch).
The graph is loaded once and shared by all runs; per-epoch lines are silenced.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.gnn import GNNParams, main  # noqa: E402
from trials.graph_data import Graph, load_graph  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(p: GNNParams, graph: Graph) -> dict[str, float]:
    with contextlib.redirect_stderr(io.StringIO()):  # per-epoch lines: not needed here
        return main(p, graph=graph)


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):6.2f} ± {statistics.stdev(values):.2f}"


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--model", default="sage2")
    parser.add_argument("--dataset", default="cora")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lambdas", default="0.1,1,10,100", help="λ grid of the search")
    parser.add_argument("--search-seeds", default="100,101", help="seeds of the λ search")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    graph = load_graph(args.dataset, args.data_root, split_seed=0, download=False)
    base = GNNParams(model=args.model, dataset=args.dataset, data_root=args.data_root,
                     epochs=args.epochs, device="cpu", threads=args.threads, download=False)
    started = time.perf_counter()
    print(f"{args.model} on {args.dataset}: {graph.num_nodes} nodes, split 6:2:2 "
          f"({len(graph.train_idx)} train), {args.epochs} epochs, CPU, {args.threads} thread(s)")

    print("\nλ search (NSR on layer 1), mean validation error over seeds", args.search_seeds)
    search_seeds = [int(s) for s in args.search_seeds.split(",")]
    scores: dict[float, float] = {}
    for lam in (float(v) for v in args.lambdas.split(",")):
        vals = [
            run(dataclasses.replace(base, layers="1", lambda_1=lam, seed=s), graph)["default"]
            for s in search_seeds
        ]
        scores[lam] = statistics.mean(vals)
        print(f"  λ = {lam:<8g} val error {scores[lam]:6.2f} %")
    best_lam = min(scores, key=lambda lam: scores[lam])
    print(f"  chosen λ = {best_lam:g}")

    results: dict[str, dict[str, list[float]]] = {}
    for label, p in (
        ("vanilla", dataclasses.replace(base, layers="none")),
        (f"NSR layer 1 (λ={best_lam:g})", dataclasses.replace(base, layers="1", lambda_1=best_lam)),
    ):
        runs = [run(dataclasses.replace(p, seed=s), graph) for s in range(args.seeds)]
        results[label] = {
            key: [r[key] for r in runs] for key in ("test_error", "default", "var_1", "var_2")
        }

    print(f"\n{args.seeds} seeds (0..{args.seeds - 1}), test error at the best validation epoch")
    print(f"  {'variant':<24} {'test error %':>14} {'val error %':>14} {'var_1':>9} {'var_2':>9}")
    for label, r in results.items():
        print(f"  {label:<24} {mean_std(r['test_error']):>14} {mean_std(r['default']):>14} "
              f"{statistics.mean(r['var_1']):9.3f} {statistics.mean(r['var_2']):9.3f}")
    vanilla, nsr = (statistics.mean(r["test_error"]) for r in results.values())
    print(f"  relative change of the test error: {100 * (nsr - vanilla) / vanilla:+.1f} %")
    print(f"  ({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
