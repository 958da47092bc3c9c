"""Benchmark of the results service, on SQLite or PostgreSQL.

1. Ingest: writes ``--experiments`` synthetic NNI experiments of ``--trials`` trials each (NNI
   3.0's nni.sqlite schema and encodings) and ingests them through the real sync path (registry
   → read-only nni.sqlite → parse → idempotent ingest), one experiment at a time: prints the
   rate over the first and the last ``--chunk`` trials and overall, then a re-sync (nothing
   changed). The results-UI experiment (``--big-trials``) is ingested first and apart.
2. Storage: bytes per trial, by table and index, and the payload of the JSON columns.
3. Answers computed in this process (no HTTP, no cache): best-config, best-λ, recommendation,
   compare over every (model, data set): median and max.
4. Over HTTP (``python -m service serve``, background sync off): each answer's first, uncached
   call, then concurrent p50/p99; the home and model pages; the report and the trials CSV
   (time, size) and, apart in a process of their own, their compute time and peak memory.
5. Results UI (issue 14): the experiment page and the importance endpoint on the big experiment.

The machine may be shared: compare figures of one run with each other.

    python benchmarks/service.py [--experiments 200] [--trials 500] [--database-url URL]

``run(args)`` returns every figure as a dict; tests/storage/test_service_benchmark.py runs it on a
small configuration so the benchmark cannot rot.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the synthetic NNI experiments live with the tests

from live_service import serve_process  # noqa: E402
from synthetic_nni import write_nni_sqlite, write_registry  # noqa: E402

from analysis import best, verdict  # noqa: E402
from service import report as rendered  # noqa: E402
from storage import queries  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.nni.registry import read_registry  # noqa: E402
from storage.sync import sync_all, sync_entry  # noqa: E402

PAIRS = [("mlp4", "digits"), ("mlp4", "mnist"), ("mlp6", "mnist"), ("mlp6", "fashion"),
         ("cnn", "cifar10"), ("sage", "cora"), ("mlp4", "fashion"), ("mlp6", "digits")]  # fmt: skip
ANSWERS: dict[str, Callable[..., Any]] = {
    "best-config": best.best_config,
    "best-lambda": best.best_lambda_per_layer,
    "recommendation": best.layer_recommendation,
    "compare": verdict.compare,
}
BIG = "bench-big"


def build_nni_dir(root: Path, n_exp: int, n_trials: int, big_trials: int) -> Path:
    nni_dir = root / "nni-experiments"
    # The results UI's case: one experiment of big_trials trials where layer 3's λ matters and
    # an assessor stopped some trials early.
    write_nni_sqlite(nni_dir / BIG / "db" / "nni.sqlite", BIG, n_trials=big_trials,
                     model="mlp4", dataset="digits", epochs=15, seed=99,
                     lambda_effect={3: 1.0}, early_stopped=0.05)  # fmt: skip
    for i in range(n_exp):
        model, dataset = PAIRS[i % len(PAIRS)]
        exp_id = f"bench{i:04d}"
        write_nni_sqlite(nni_dir / exp_id / "db" / "nni.sqlite", exp_id, n_trials=n_trials,
                         model=model, dataset=dataset, epochs=10, seed=i,
                         start_ms=1_700_000_000_000 + i * 10_000_000)  # fmt: skip
    write_registry(nni_dir, {BIG: {}} | {f"bench{i:04d}": {} for i in range(n_exp)})
    return nni_dir


def stored_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The (model, data set) groups the synthetic experiments hold."""
    return PAIRS[: max(1, min(args.experiments, len(PAIRS)))]


def percentile(sorted_ms: list[float], p: float) -> float:
    k = min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms)) - 1))
    return sorted_ms[k]


def chunk_rates(steps: list[tuple[int, float]], chunk: int) -> tuple[float, float]:
    """Rates (trials/s) over the first and the last ``chunk`` trials, from per-experiment
    (trials, seconds) steps in ingest order, each window ending on an experiment boundary."""

    def window(seq: list[tuple[int, float]]) -> float:
        n = s = 0.0
        for trials, seconds in seq:
            n, s = n + trials, s + seconds
            if n >= chunk:
                break
        return n / s if s else 0.0

    return window(steps), window(steps[::-1])


def ingest(db: Database, nni_dir: Path, chunk: int) -> dict[str, Any]:
    """Every registry entry through ``sync_entry`` (what ``sync_all`` does per entry), timed one
    by one; the big experiment first and outside the chunk figures."""
    steps: list[tuple[int, float]] = []
    for entry in read_registry(nni_dir):
        t0 = time.perf_counter()
        result = sync_entry(db, entry, nni_dir)
        dt = time.perf_counter() - t0
        if result is None or result.inserted == 0:
            raise RuntimeError(f"{entry.nni_id}: nothing ingested ({result})")
        if entry.nni_id != BIG:
            steps.append((result.inserted, dt))
    total = sum(n for n, _ in steps)
    seconds = sum(s for _, s in steps)
    first, last = chunk_rates(steps, chunk)
    return {"trials": total, "seconds": seconds, "rate": total / seconds,
            "first_rate": first, "last_rate": last, "chunk": chunk}  # fmt: skip


def storage_figures(db: Database, n_trials: int) -> dict[str, Any]:
    """Bytes per trial in all, per table and index (SQLite: dbstat when compiled in), and the
    payload of the trials' JSON and text columns."""
    cols = ("intermediate", "parameters", "config", "final_metrics", "final_raw", "budget")
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "sqlite":
            total = conn.exec_driver_sql("PRAGMA page_count").scalar() * conn.exec_driver_sql(
                "PRAGMA page_size").scalar()  # fmt: skip
            try:
                parts = dict(conn.exec_driver_sql(
                    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").all())  # fmt: skip
            except Exception:  # noqa: BLE001 - dbstat is a compile-time option
                parts = {}
            size = "length(CAST({} AS BLOB))"
        else:
            total = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
            parts = dict(conn.exec_driver_sql(
                "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                "AND c.relkind IN ('r', 'i', 't')").all())  # fmt: skip
            size = "pg_column_size({})"
        payload = conn.exec_driver_sql(
            "SELECT " + ", ".join(f"COALESCE(SUM({size.format(c)}), 0)" for c in cols)
            + " FROM trials").one()  # fmt: skip
    per = max(n_trials, 1)
    return {
        "bytes_per_trial": total / per,
        "parts": {k: v / per for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v},
        "columns": {c: v / per for c, v in zip(cols, payload, strict=True)},
    }


def answers_in_process(db: Database, pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    out = {}
    for name, answer in ANSWERS.items():
        times = []
        for m, d in pairs:
            with db.session_scope(snapshot=True) as session:
                t0 = time.perf_counter()
                answer(session, queries.Group(m, d))
                times.append((time.perf_counter() - t0) * 1000)
        out[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
    return out


def _peak_of(job: str, url: str, queue: Any) -> None:
    """In a process of its own: compute ``job`` ("report" or "csv"), put (seconds, peak RSS in
    MB beyond the start, output bytes)."""
    db = Database(url)
    start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with db.session_scope(snapshot=True) as session:
        if job == "report":
            size = len(rendered.report_csv(session))
        else:
            header, rows = queries.iter_trials_csv_rows(session)
            size = len(",".join(header))
            for row in rows:
                size += sum(len(str(c)) for c in row)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((seconds, (peak_kb - start_kb) / 1024, peak_kb / 1024, size))


def compute_peaks(url: str) -> dict[str, dict[str, float]]:
    ctx = multiprocessing.get_context("spawn")
    out = {}
    for job in ("report", "csv"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_peak_of, args=(job, url, queue))
        proc.start()
        seconds, grown_mb, peak_mb, size = queue.get(timeout=1800)
        proc.join()
        out[job] = {"seconds": seconds, "grown_mb": grown_mb, "peak_mb": peak_mb, "bytes": size}
    return out


def load(base: str, paths: list[str], total: int, concurrency: int) -> list[float]:
    """``total`` GETs over ``paths`` from ``concurrency`` threads; latencies in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=120) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                r = client.get(paths[i % len(paths)])
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    if r.status_code != 200:
                        errors.append(f"{paths[i % len(paths)]}: HTTP {r.status_code} {r.text}")
                        return
                    latencies.append(dt)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0][:500])
    return sorted(latencies)


def http_figures(base: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ANSWERS:
        paths = [f"/api/models/{m}/{d}/{name}" for m, d in stored_pairs(args)]
        first = load(base, paths, len(paths), 1)  # one uncached call per group
        lat = load(base, paths, args.requests, args.concurrency)
        out[name] = {"first_ms": max(first), "p50_ms": percentile(lat, 50),
                     "p99_ms": percentile(lat, 99), "n": len(lat)}  # fmt: skip
    m, d = PAIRS[0]
    for name, path in (("home page", "/"), ("model page", f"/models/{m}/{d}")):
        lat = load(base, [path], args.page_requests, 1)
        out[name] = {"first_ms": lat[-1], "p50_ms": percentile(lat, 50),
                     "p99_ms": percentile(lat, 99), "n": len(lat)}  # fmt: skip
    for name, path in (("report", "/api/report"), ("trials.csv", "/api/trials.csv")):
        t0 = time.perf_counter()
        r = httpx.get(base + path, timeout=1800)
        r.raise_for_status()
        out[name] = {"seconds": time.perf_counter() - t0, "bytes": len(r.content)}
    out["results UI"] = results_ui(base, args)
    return out


def results_ui(base: str, args: argparse.Namespace) -> dict[str, float]:
    """The experiment page and the importance endpoint on the big experiment."""
    page = f"/experiments/{BIG}"
    t0 = time.perf_counter()
    size = len(httpx.get(base + page, timeout=120).content)
    first = (time.perf_counter() - t0) * 1000
    lat = load(base, [page], args.page_requests, 1)
    imp = f"/api/experiments/{BIG}/importance"
    imp_first = load(base, [imp], 1, 1)[0]
    filtered = [f"{imp}?max_error={25 - k * 0.25}" for k in range(args.importance_filters)]
    uncached = load(base, filtered, len(filtered), 1)
    cached = load(base, [imp] + filtered, args.page_requests * 4, args.concurrency)
    return {"page_mb": size / 1e6, "page_first_ms": first, "page_p50_ms": percentile(lat, 50),
            "page_p99_ms": percentile(lat, 99), "importance_first_ms": imp_first,
            "importance_uncached_p50_ms": percentile(uncached, 50),
            "importance_cached_p99_ms": percentile(cached, 99)}  # fmt: skip


def run(args: argparse.Namespace, root: Path, url: str) -> dict[str, Any]:
    """Every part of the benchmark on ``url`` (an empty database) with files under ``root``."""
    t0 = time.perf_counter()
    nni_dir = build_nni_dir(root, args.experiments, args.trials, args.big_trials)
    figures: dict[str, Any] = {"write_seconds": time.perf_counter() - t0}
    db = Database(url)
    try:
        db.migrate()
        figures["ingest"] = ingest(db, nni_dir, args.chunk)
        again = sync_all(db, nni_dir)
        if again.errors or again.inserted or again.updated:
            raise RuntimeError(f"re-sync changed rows or failed: {again}")
        figures["resync_seconds"] = again.seconds
        stored = figures["ingest"]["trials"] + args.big_trials
        figures["stored"] = stored
        figures["storage"] = storage_figures(db, stored)
        figures["in_process"] = answers_in_process(db, stored_pairs(args))
    finally:
        db.dispose()
    figures["compute"] = compute_peaks(url)
    env = dict(os.environ, NSR_DATABASE_URL=url, NSR_NNI_DIR=str(nni_dir),
               NSR_SYNC_INTERVAL="0")  # fmt: skip
    with serve_process(env) as base:
        figures["http"] = http_figures(base, args)
    return figures


def print_figures(f: dict[str, Any], backend: str) -> None:
    ing = f["ingest"]
    print(f"[{backend}] ingest: {ing['trials']:,} trials in {ing['seconds']:.1f}s: first "
          f"{ing['chunk']:,} {ing['first_rate']:,.0f}/s, last {ing['chunk']:,} "
          f"{ing['last_rate']:,.0f}/s (ratio {ing['first_rate'] / ing['last_rate']:.2f}), "
          f"overall {ing['rate']:,.0f} trials/s (target >= 20,000; ratio <= 1.5)")  # fmt: skip
    print(f"re-sync (nothing changed): {f['resync_seconds'] * 1000:.0f} ms")
    st = f["storage"]
    print(
        f"storage: {st['bytes_per_trial']:,.0f} bytes/trial over {f['stored']:,} trials "
        "(goal <= 500)"
    )
    print("  by table/index: " + ", ".join(f"{k} {v:,.0f}" for k, v in st["parts"].items()))
    print("  column payload: " + ", ".join(f"{k} {v:,.0f}" for k, v in st["columns"].items()))
    for name, v in f["in_process"].items():
        print(f"{name:>15}: in process, uncached: median {v['median_ms']:.1f} ms, max "
              f"{v['max_ms']:.1f} ms")  # fmt: skip
    for name, v in f["compute"].items():
        print(f"{name:>15}: computed alone: {v['seconds']:.2f}s, peak RSS {v['peak_mb']:.0f} MB "
              f"(+{v['grown_mb']:.0f} MB), {v['bytes']:,} bytes")  # fmt: skip
    for name, v in f["http"].items():
        if "p99_ms" in v:
            print(f"{name:>15}: HTTP first {v['first_ms']:.1f} ms; {v['n']} requests: p50 "
                  f"{v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms")  # fmt: skip
        elif "seconds" in v:
            print(f"{name:>15}: HTTP {v['seconds']:.2f}s, {v['bytes']:,} bytes")
    ui = f["http"]["results UI"]
    print("     results UI: " + ", ".join(f"{k} {v:,.1f}" for k, v in ui.items()))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--experiments", type=int, default=200)
    ap.add_argument("--trials", type=int, default=500, help="trials per experiment")
    ap.add_argument("--chunk", type=int, default=100_000, help="trials per rate window")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    ap.add_argument("--requests", type=int, default=2000, help="requests per endpoint")
    ap.add_argument("--workdir", type=Path, help="keep files here (default: a temp dir)")
    ap.add_argument("--database-url", help="an empty database (default: a SQLite file)")
    ap.add_argument("--big-trials", type=int, default=10_000,
                    help="trials of the experiment the results page is measured on")  # fmt: skip
    ap.add_argument("--page-requests", type=int, default=40, help="page requests")
    ap.add_argument("--importance-filters", type=int, default=10)
    return ap


def main() -> int:
    args = parser().parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        db_path = root / "bench.sqlite"
        if args.database_url is None:
            db_path.unlink(missing_ok=True)
        url = args.database_url or f"sqlite:///{db_path}"
        figures = run(args, root, url)
    print_figures(figures, url.split(":")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
