"""GraphSAGE-2 on Cora: vanilla vs NSR on layer 1 (the paper's GraphSAGE₁), 5 seeds each.

    .venv/bin/python benchmarks/gnn.py --data-root /path/to/datasets [--datasets cora,citeseer]

λ comes from a small search on the validation error (a grid over the paper's [0.01, 100] range,
on search seeds disjoint from the 5 evaluation seeds), then both variants train with 5 seeds on the
same 6:2:2 split and the script prints the mean ± std test error (at the best validation epoch).
The graph is loaded once and shared by all runs; per-epoch lines are silenced.

Beside the accuracy, per data set: the training time of one trial in this process (mean over the
runs, the graph already loaded), its time per epoch, and the wall time of one whole trial as NNI
starts it (``python -m trials.gnn``, interpreter and data loading included; best of
``--wall-repeats``: other processes on the machine only ever add time).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.data import default_data_root  # noqa: E402
from trials.gnn import GNNParams, main  # noqa: E402
from trials.graph_data import Graph, load_graph  # noqa: E402
from trials.params import TrialError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run(p: GNNParams, graph: Graph) -> dict[str, float]:
    with contextlib.redirect_stderr(io.StringIO()):  # per-epoch lines: not needed here
        return main(p, graph=graph)


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):6.2f} ± {statistics.stdev(values):.2f}"


def whole_trial_seconds(
    args: argparse.Namespace, dataset: str, repeats: int
) -> tuple[float, float]:
    """(wall, CPU) seconds of ``python -m trials.gnn`` on ``dataset`` (NSR on layer 1), best of
    repeats. CPU = the child's user + system time: what the wall time is on an idle machine."""
    command = [sys.executable, "-m", "trials.gnn", "--model", args.model, "--dataset", dataset,
               "--data-root", args.data_root, "--epochs", str(args.epochs), "--threads",
               str(args.threads), "--download", "false", "--layers", "1"]  # fmt: skip
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best_cpu = min(best_cpu, cpu)
    return best, best_cpu


def dense_speedup(base: GNNParams, graph: Graph) -> tuple[float, float]:
    """Training seconds of one vanilla trial on the sparse features and on a dense copy, measured
    back to back (other load on the machine hits both alike)."""
    p = dataclasses.replace(base, layers="none", seed=0)
    t0 = time.perf_counter()
    run(p, graph)
    sparse = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(p, graph.with_features(graph.x.to_dense()))
    return sparse, time.perf_counter() - t0


def benchmark_dataset(args: argparse.Namespace, dataset: str) -> dict[str, float]:
    """The λ search and the vanilla/NSR table of one data set; returns its timings."""
    graph = load_graph(dataset, args.data_root, split_seed=0, download=False)
    base = GNNParams(
        model=args.model,
        dataset=dataset,
        data_root=args.data_root,
        epochs=args.epochs,
        device="cpu",
        threads=args.threads,
        download=False,
    )
    started = time.perf_counter()
    layout = "sparse CSR" if graph.sparse_features else "dense"
    print(f"\n{args.model} on {dataset}: {graph.num_nodes} nodes, {graph.num_features} features "
          f"({layout}), split 6:2:2 ({len(graph.train_idx)} train), {args.epochs} epochs, CPU, "
          f"{args.threads} thread(s)")  # fmt: skip
    seconds: list[float] = []
    epoch_seconds: list[float] = []

    def timed(p: GNNParams) -> dict[str, float]:
        t0 = time.perf_counter()
        metrics = run(p, graph)
        seconds.append(time.perf_counter() - t0)
        epoch_seconds.append(metrics["epoch_seconds"])
        return metrics

    print("\nλ search (NSR on layer 1), mean validation error over seeds", args.search_seeds)
    search_seeds = [int(s) for s in args.search_seeds.split(",")]
    scores: dict[float, float] = {}
    for lam in (float(v) for v in args.lambdas.split(",")):
        vals = [
            timed(dataclasses.replace(base, layers="1", lambda_1=lam, seed=s))["default"]
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
        runs = [timed(dataclasses.replace(p, seed=s)) for s in range(args.seeds)]
        results[label] = {
            key: [r[key] for r in runs] for key in ("test_error", "default", "var_1", "var_2")
        }

    print(f"\n{args.seeds} seeds (0..{args.seeds - 1}), test error at the best validation epoch")
    print(f"  {'variant':<24} {'test error %':>14} {'val error %':>14} {'var_1':>9} {'var_2':>9}")
    for label, r in results.items():
        print(
            f"  {label:<24} {mean_std(r['test_error']):>14} {mean_std(r['default']):>14} "
            f"{statistics.mean(r['var_1']):9.3f} {statistics.mean(r['var_2']):9.3f}"
        )
    vanilla, nsr = (statistics.mean(r["test_error"]) for r in results.values())
    print(f"  relative change of the test error: {100 * (nsr - vanilla) / vanilla:+.1f} %")
    wall, cpu = whole_trial_seconds(args, dataset, args.wall_repeats)
    timing = {
        "train_s": statistics.mean(seconds),
        "epoch_ms": 1000 * statistics.mean(epoch_seconds),
        "trial_wall_s": wall,
        "trial_cpu_s": cpu,
        "test_error": nsr,
    }
    print(f"  trial time: {timing['train_s']:.2f} s in process ({timing['epoch_ms']:.1f} ms per "
          f"epoch); a whole `python -m trials.gnn`: {wall:.2f} s wall, {cpu:.2f} s CPU (best of "
          f"{args.wall_repeats})")  # fmt: skip
    if graph.sparse_features and args.compare_dense:
        sparse_s, dense_s = dense_speedup(base, graph)
        timing["dense_speedup"] = dense_s / sparse_s
        print(f"  the same vanilla trial on a dense copy of the features: {dense_s:.2f} s against "
              f"{sparse_s:.2f} s sparse ({dense_s / sparse_s:.1f}x)")  # fmt: skip
    print(f"  ({time.perf_counter() - started:.0f} s for this data set)")
    return timing


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-root",
        default=default_data_root(),
        help="root with planetoid/<Name>/raw (default: NSR_DATA_ROOT or the user's data dir)",
    )
    parser.add_argument("--model", default="sage2")
    parser.add_argument("--datasets", default="cora", help="comma list of graph data sets")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--lambdas", default="0.1,1,10,100", help="λ grid of the search")
    parser.add_argument("--search-seeds", default="100,101", help="seeds of the λ search")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall-repeats", type=int, default=3)
    parser.add_argument("--compare-dense", type=int, default=1, help="1: time a dense-input run")
    args = parser.parse_args(argv)

    timings = {}
    for dataset in args.datasets.split(","):
        try:
            timings[dataset] = benchmark_dataset(args, dataset)
        except TrialError as exc:  # a data set whose files are not there: say so, go on
            print(f"\n{dataset}: skipped: {exc}")
    print(f"\nPer data set ({args.model}, {args.epochs} epochs, {args.threads} thread(s))")
    print(f"  {'data set':<18} {'NSR test error %':>16} {'trial wall s':>12} {'trial CPU s':>11} "
          f"{'train s':>8} {'ms/epoch':>9} {'dense/sparse':>12}")  # fmt: skip
    for dataset, t in timings.items():
        speedup = f"{t['dense_speedup']:.1f}x" if "dense_speedup" in t else "-"
        print(f"  {dataset:<18} {t['test_error']:16.2f} {t['trial_wall_s']:12.2f} "
              f"{t['trial_cpu_s']:11.2f} {t['train_s']:8.2f} {t['epoch_ms']:9.1f} "
              f"{speedup:>12}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(cli())
