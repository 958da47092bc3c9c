"""Soak: the service (a real `python -m service serve`) syncs a running NNI experiment every
second while 20 clients read concurrently for 60 s, and writers run beside them: POST /api/sync in
a loop, an import of an uploaded nni.sqlite and its delete, over and over. On SQLite and on
PostgreSQL. No request fails, no trial is missed."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from nni_runner import NNIExperiment, free_port, tiny_config
from synthetic_nni import write_nni_sqlite

ROOT = Path(__file__).resolve().parents[2]
CLIENTS, SECONDS = 20, 60.0


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.nni
def test_soak_20_readers_and_writers_while_syncing_a_running_experiment(tmp_path, db_url):
    exp = NNIExperiment(home=tmp_path / "nni-home", port=free_port())
    exp.home.mkdir()
    # Enough trials, one at a time, that new ones keep arriving during the whole minute.
    exp.create(tiny_config(max_trials=10, epochs=4, concurrency=1))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), NSR_NNI_DIR=str(exp.nni_dir),
               NSR_DATABASE_URL=db_url,
               NSR_SYNC_INTERVAL="1", NSR_PORT=str(port))  # fmt: skip
    log = tmp_path / "server.log"
    server = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        api = httpx.Client(base_url=base, timeout=30)

        def has_a_result() -> bool:
            try:
                return api.get("/api/models/mlp4/digits/best-config").status_code == 200
            except httpx.TransportError:
                return False

        # Readers start once the first trial is in, so every answer exists (200) from then on.
        try:
            wait_for(has_a_result, 240, "the first finished trial in the service")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nservice log:\n{log.read_text()[-6000:]}") from None
        trials_at_start = api.get(f"/api/experiments/{exp.id}").json()["n_trials"]
        paths = [
            "/api/experiments", f"/api/experiments/{exp.id}",
            f"/api/experiments/{exp.id}/trials?limit=100", "/api/trials?model=mlp4&limit=20",
            "/api/models", "/api/models/mlp4/digits/best-config",
            "/api/models/mlp4/digits/best-lambda", "/api/models/mlp4/digits/recommendation",
            "/api/models/mlp4/digits/compare", f"/api/trials.csv?experiment={exp.id}",
            "/", f"/experiments/{exp.id}",
        ]  # fmt: skip
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + SECONDS

        def reader(k: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as c:
                i = k
                while time.monotonic() < stop_at:
                    path = paths[i % len(paths)]
                    i += 1
                    t0 = time.perf_counter()
                    try:
                        r = c.get(path)
                        ok, why = r.status_code == 200, f"{r.status_code} {r.text[:200]}"
                    except httpx.HTTPError as exc:
                        ok, why = False, repr(exc)
                    dt = time.perf_counter() - t0
                    with lock:
                        latencies.append(dt)
                        if not ok:
                            errors.append(f"GET {path}: {why}")

        upload_path = tmp_path / "upload" / "db" / "nni.sqlite"
        write_nni_sqlite(upload_path, "soakUp", n_trials=40, seed=9)
        upload = upload_path.read_bytes()
        writes: collections.Counter[str] = collections.Counter()

        def writer(kind: str) -> None:
            # What each write may answer: a delete may find the experiment already gone.
            ok_codes = {"sync": {200}, "import": {200}, "delete": {204, 404}}[kind]
            with httpx.Client(base_url=base, timeout=60) as c:
                while time.monotonic() < stop_at:
                    t0 = time.perf_counter()
                    try:
                        if kind == "sync":
                            r = c.post("/api/sync")
                        elif kind == "import":
                            r = c.post("/api/import", content=upload,
                                       headers={"Content-Type": "application/octet-stream"})
                        else:
                            r = c.delete("/api/experiments/soakUp")
                        ok, why = r.status_code in ok_codes, f"{r.status_code} {r.text[:200]}"
                    except httpx.HTTPError as exc:
                        ok, why = False, repr(exc)
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                        writes[f"{kind} {r.status_code if ok else 'error'}"] += 1
                        if not ok:
                            errors.append(f"{kind}: {why}")
                    time.sleep(0.2)

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(CLIENTS)]
        threads += [threading.Thread(target=writer, args=(k,)) for k in ("sync", "import",
                                                                         "delete")]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        trials_at_end = api.get(f"/api/experiments/{exp.id}").json()["n_trials"]

        # The experiment ends; one more sync pass; then the service holds every NNI trial.
        exp.wait(timeout=600)
        wait_for(lambda: api.get(f"/api/experiments/{exp.id}").json()["n_trials"]
                 >= len(exp.trials), 60, "the last trials")  # fmt: skip
        assert api.post("/api/sync").status_code == 200
        stored = api.get(f"/api/experiments/{exp.id}/trials", params={"limit": 1000}).json()
        # The imported experiment, after its last import or delete: whole or absent, and whole
        # again after one more import.
        last = api.get("/api/experiments/soakUp")
        assert last.status_code == 404 or last.json()["n_trials"] == 40
        assert api.post("/api/import", content=upload,
                        headers={"Content-Type": "application/octet-stream"}).status_code == 200
        assert api.get("/api/experiments/soakUp").json()["n_trials"] == 40
        api.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        exp.stop()

    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"\nsoak ({db_url.split(':')[0]}): {len(latencies)} requests by {CLIENTS} readers "
          f"and 3 writers ({dict(sorted(writes.items()))}) in {SECONDS:.0f} s, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, errors {len(errors)}; trials in the service "
          f"{trials_at_start} -> {trials_at_end} during the soak, {stored['total']} at the end")
    assert errors == [], f"{errors[:10]}\nservice log:\n{log.read_text()[-6000:]}"
    assert writes["sync 200"] > 0 and writes["import 200"] > 0 and writes["delete 204"] > 0
    assert len(latencies) > CLIENTS * 10
    # The sync really ran under load: trials arrived while the readers read.
    assert trials_at_end > trials_at_start
    nni_ids = {t["trialJobId"] for t in exp.trials}
    assert {t["trial_job_id"] for t in stored["items"]} == nni_ids  # no trial missed
    by_id = {t["trial_job_id"]: t for t in stored["items"]}
    for t in exp.trials:
        assert by_id[t["trialJobId"]]["status"] == t["status"]
