"""Readers cannot starve the service: /api/health and a cached answer keep answering while
costly uncached requests pile up.

1. Writes one synthetic 2,000-trial experiment and 40 small ones, syncs them into a fresh SQLite
   database, starts the service (``python -m service serve``, background sync off).
2. Phase "importance": ``--clients`` (8) clients ask for *distinct* uncached fANOVA importance
   queries (each a new error-range filter) with a 1-s client timeout, for ``--seconds`` (60).
   One such forest takes seconds (over 2,000 trials), so none is answered within the client's
   second: the phase is the worst case for the service, every request a new computation that
   its client abandons. Queued ones are cancelled; the two running ones end on their own.
3. Phase "report": ``--report-clients`` (40) clients loop on ``/api/report`` (computed once, in
   the lane of kept answers that the importance flood cannot fill, then a cached answer).
During each phase a probe asks for ``/api/health`` and a cached ``best-config`` every 0.25 s and
records their latency. Prints p50/p99/max per probe and phase, beside the target (< 0.5 s), and
how long health takes to recover once the load stops.

    python benchmarks/starvation.py [--seconds 60] [--clients 8] [--report-clients 40]
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the synthetic NNI experiments live with the tests

from live_service import serve_process  # noqa: E402
from synthetic_nni import write_nni_sqlite, write_registry  # noqa: E402

from storage.db import Database  # noqa: E402
from storage.sync import sync_all  # noqa: E402

BIG = "starve-big"
TARGET_S = 0.5


def percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(p / 100 * len(sorted_ms)) - 1))]


def build(root: Path) -> tuple[Path, str]:
    nni_dir = root / "nni-experiments"
    write_nni_sqlite(nni_dir / BIG / "db" / "nni.sqlite", BIG, n_trials=2000, model="mlp4",
                     dataset="digits", epochs=15, seed=5, lambda_effect={3: 1.0})  # fmt: skip
    ids = [f"small{i:03d}" for i in range(40)]
    for i, exp_id in enumerate(ids):
        write_nni_sqlite(nni_dir / exp_id / "db" / "nni.sqlite", exp_id, n_trials=50,
                         model=f"mlp{4 + i % 3 * 2}", dataset="mnist", seed=i)  # fmt: skip
    write_registry(nni_dir, {e: {} for e in [BIG, *ids]})
    url = f"sqlite:///{root / 'nsr.sqlite'}"
    db = Database(url)
    db.migrate()
    report = sync_all(db, nni_dir)
    db.dispose()
    print(f"stored {report.inserted:,} trials in {report.experiments} experiments")
    return nni_dir, url


def probe(base: str, stop: threading.Event, out: dict[str, list[float]]) -> None:
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            for name, path in (("health", "/api/health"),
                               ("cached best-config", "/api/models/mlp4/digits/best-config")):
                t0 = time.perf_counter()
                client.get(base + path)
                out.setdefault(name, []).append(time.perf_counter() - t0)
            time.sleep(0.25)


def load(base: str, kind: str, clients: int, seconds: float, counts: dict[str, int]) -> None:
    """``clients`` threads asking for ``kind`` for ``seconds`` (run in a process of its own, so
    that the probe's latency is the service's, not this client's GIL)."""
    stop = time.monotonic() + seconds

    def ask(http: httpx.Client, i: int, n: int) -> httpx.Response:
        if kind == "report":
            return http.get(f"{base}/api/report")
        max_error = f"{40 - (i * 997 + n) % 997 / 50:.2f}"  # a new filter each time: uncached
        return http.get(f"{base}/api/experiments/{BIG}/importance",
                        params={"method": "fanova", "max_error": max_error})  # fmt: skip

    def client(i: int) -> None:
        mine: collections.Counter[str] = collections.Counter()
        with httpx.Client(timeout=1.0) as http:
            n = 0
            while time.monotonic() < stop:
                n += 1
                mine["sent"] += 1
                try:
                    r = ask(http, i, n)
                    mine["answered" if r.status_code == 200 else f"HTTP {r.status_code}"] += 1
                except httpx.TimeoutException:
                    mine["gave up"] += 1  # the client leaves; the service must not care
        with lock:  # one update per client: a Manager dict's += is not atomic across threads
            for what, k in mine.items():
                counts[what] = counts.get(what, 0) + k

    lock = threading.Lock()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def phase(base: str, name: str, kind: str, clients: int, seconds: float) -> None:
    stop = threading.Event()
    probes: dict[str, list[float]] = {}
    with multiprocessing.Manager() as manager:
        counts = manager.dict({"sent": 0, "answered": 0, "gave up": 0})
        loader = multiprocessing.Process(target=load, args=(base, kind, clients, seconds, counts))
        prober = threading.Thread(target=probe, args=(base, stop, probes), daemon=True)
        loader.start()
        prober.start()
        loader.join()
        stop.set()
        prober.join(timeout=120)
        counted = dict(counts)
    t0 = time.perf_counter()
    while httpx.get(base + "/api/health", timeout=60).elapsed.total_seconds() > 0.1:
        time.sleep(0.1)
    recovered = time.perf_counter() - t0
    print(f"\n{name}: {clients} clients for {seconds:.0f} s: {counted}")
    for probe_name, lat in probes.items():
        ms = sorted(x * 1000 for x in lat)
        verdict = "ok" if ms[-1] < TARGET_S * 1000 else "OVER"
        print(f"  {probe_name:>18}: n={len(ms)} p50 {statistics.median(ms):.1f} ms, "
              f"p99 {percentile(ms, 99):.1f} ms, max {ms[-1]:.1f} ms "
              f"(target < {TARGET_S * 1000:.0f} ms: {verdict})")  # fmt: skip
    print(f"  health under 100 ms again {recovered:.1f} s after the clients stopped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--clients", type=int, default=8, help="importance clients")
    parser.add_argument("--report-clients", type=int, default=40, help="/api/report clients")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nsr-starve-") as tmp:
        nni_dir, url = build(Path(tmp))
        env = dict(os.environ, NSR_DATABASE_URL=url, NSR_NNI_DIR=str(nni_dir),
                   NSR_SYNC_INTERVAL="0")  # fmt: skip
        with serve_process(env) as base:
            httpx.get(f"{base}/api/models/mlp4/digits/best-config", timeout=60)  # now cached
            phase(base, "distinct uncached fANOVA importance", "importance", args.clients,
                  args.seconds)  # fmt: skip
            # fANOVA computations already running end on their own (a running one cannot be
            # cancelled), but the report has a lane of its own: it does not wait for them.
            t0 = time.perf_counter()
            while httpx.get(f"{base}/api/report", timeout=600).status_code != 200:
                time.sleep(1)
            waited = time.perf_counter() - t0
            print(f"\nfirst /api/report after the importance phase: {waited:.1f} s "
                  "(the fANOVA computations left running do not hold it)")
            phase(base, "/api/report", "report", args.report_clients, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
