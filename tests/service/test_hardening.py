"""Browser-origin writes refused (Origin, Sec-Fetch-Site, Host, import content type), no open
service by accident (non-loopback bind without a token, placeholder and short tokens), CSV formula
cells neutralised and rows streamed, non-finite numbers kept off the pages, ids URL-encoded in
links, (quickstart's sync with a token: tests/service/test_quickstart.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nni_runner import free_port
from pydantic import SecretStr, ValidationError
from synthetic_nni import write_nni_sqlite

from service.app import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "a-real-token-0123456789abcdef"
OCTETS = {"Content-Type": "application/octet-stream"}


def upload(tmp_path: Path, nni_id: str = "expU") -> bytes:
    path = tmp_path / nni_id / "db" / "nni.sqlite"
    write_nni_sqlite(path, nni_id, n_trials=5, seed=5)
    return path.read_bytes()


# ------------------------------------------------------------------ cross-site writes


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "http://127.0.0.1:9999"},  # another port on this machine: another origin
    {"Origin": "null"},  # sandboxed frames, file:// pages
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # e.g. a page of another local service
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
]


@pytest.mark.parametrize("with_token", [False, True])
def test_cross_site_writes_are_refused_with_or_without_token(settings, tmp_path, with_token):
    s = settings.model_copy(update={"api_token": SecretStr(TOKEN) if with_token else None})
    auth = {"Authorization": f"Bearer {TOKEN}"} if with_token else {}
    with TestClient(create_app(s), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync", headers=auth).status_code == 200
        body = upload(tmp_path)
        for headers in CROSS_SITE:
            for method, path, kw in [
                ("post", "/api/sync", {}),
                ("post", "/api/import", {"content": body, "headers": OCTETS}),
                ("delete", "/api/experiments/expA", {}),
            ]:
                h = {**kw.pop("headers", {}), **headers, **auth}
                r = getattr(c, method)(path, headers=h, **kw)
                assert r.status_code == 403, (headers, path, r.status_code, r.text)
                assert "refused" in r.json()["detail"]
            # Reads stay open to any origin (the browser's same-origin policy keeps the answers).
            assert c.get("/api/experiments", headers=headers).status_code == 200
        # Nothing was written: expA is whole, expU was not imported.
        assert c.get("/api/experiments/expA").json()["n_trials"] == 80
        assert c.get("/api/experiments/expU").status_code == 404


def test_same_origin_and_command_line_writes_pass(client, tmp_path):
    body = upload(tmp_path)
    same = {"Origin": "http://127.0.0.1", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/sync", headers=same).status_code == 200
    assert client.post("/api/sync", headers={"Sec-Fetch-Site": "none"}).status_code == 200
    r = client.post("/api/import", content=body, headers=OCTETS)  # curl: no Origin at all
    assert r.status_code == 200 and r.json()["inserted"] == 5


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x"])  # fmt: skip
def test_import_needs_its_content_type(client, tmp_path, ctype):
    # The three types a page may send without a CORS preflight, and none at all.
    headers = {"Content-Type": ctype} if ctype else {}
    r = client.post("/api/import", content=upload(tmp_path), headers=headers)
    assert r.status_code == 415 and "application/octet-stream" in r.json()["detail"]
    assert client.get("/api/experiments/expU").status_code == 404


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                                  "[::2]:8765"])  # fmt: skip
def test_unknown_host_names_are_refused_dns_rebinding(client, host):
    for method, path in [("get", "/api/experiments"), ("get", "/"), ("post", "/api/sync")]:
        r = getattr(client, method)(path, headers={"Host": host})
        assert r.status_code == 421, (path, r.text)
        assert "NSR_ALLOWED_HOSTS" in r.json()["detail"]


def test_loopback_names_and_configured_hosts_are_served(settings):
    s = settings.model_copy(update={"allowed_hosts": "nsr.lab.example, 10.0.0.5"})
    with TestClient(create_app(s), base_url="http://127.0.0.1") as c:
        for host in ["127.0.0.1:8765", "localhost", "[::1]:8765", "nsr.lab.example:8765",
                     "10.0.0.5"]:  # fmt: skip
            assert c.get("/api/health", headers={"Host": host}).status_code == 200, host
        assert c.get("/api/health", headers={"Host": "other.example"}).status_code == 421
    anything = settings.model_copy(update={"allowed_hosts": "*"})
    with TestClient(create_app(anything), base_url="http://127.0.0.1") as c:
        assert c.get("/api/health", headers={"Host": "other.example"}).status_code == 200


# ------------------------------------------------------------------ no open service by accident


def serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("NSR_")}
    full.update(PYTHONPATH=str(ROOT), NSR_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite'}",
                NSR_PORT="1", NSR_SYNC_INTERVAL="0", **env)  # fmt: skip
    return subprocess.run([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_network_bind_without_token_refuses_to_start(tmp_path):
    out = serve({"NSR_HOST": "0.0.0.0"}, tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: refusing to listen on 0.0.0.0 without NSR_API_TOKEN")
    assert "NSR_ALLOW_OPEN_BIND" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_open_bind_needs_the_explicit_opt_out(tmp_path):
    # With the opt-out it serves, and says that anyone may write.
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSR_")}
    env.update(PYTHONPATH=str(ROOT), NSR_DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite'}",
               NSR_HOST="0.0.0.0", NSR_PORT=str(free_port()), NSR_ALLOW_OPEN_BIND="true",
               NSR_SYNC_INTERVAL="0")  # fmt: skip
    out = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        first = out.stdout.readline() if out.stdout else ""
    finally:
        out.terminate()
        _, err = out.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0 without NSR_API_TOKEN" in err
    assert first.startswith("nsr-search service on http://0.0.0.0:")


@pytest.mark.parametrize("token,why", [
    ("change-me-too", "placeholder"), ("change-me", "placeholder"),
    ("CHANGEME-0123456789abc", "placeholder"),
    ("short", "at least 16"), ("   padded   ", "at least 16"), ("x" * 40, "placeholder"),
])  # fmt: skip
def test_placeholder_and_short_tokens_are_refused(tmp_path, token, why):
    with pytest.raises(ValidationError, match=why):
        Settings(_env_file=None, api_token=token)
    out = serve({"NSR_API_TOKEN": token, "NSR_HOST": "0.0.0.0"}, tmp_path)
    assert out.returncode == 2 and "NSR_API_TOKEN" in out.stderr and why in out.stderr
    assert "Traceback" not in out.stderr


def test_a_token_of_spaces_is_no_token_so_a_network_bind_refuses(tmp_path):
    out = serve({"NSR_API_TOKEN": "     ", "NSR_HOST": "0.0.0.0"}, tmp_path)
    assert out.returncode == 2 and "refusing to listen" in out.stderr


# ------------------------------------------------------------------ CSV, pages, links


def test_csv_neutralises_formula_cells_and_streams(settings, tmp_path):
    nni_dir = settings.nni_dir
    path = nni_dir / "evilCsv" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "evilCsv", n_trials=3, seed=1)
    import sqlite3

    conn = sqlite3.connect(path)
    hp = {"parameter_id": 0, "parameters": {"layers": "4", "note": "=HYPERLINK(\"http://x\")",
                                            "p": "+1", "m": "-2+3", "a": "@SUM(A1)",
                                            "t": "\tx", "ok": "fine", "lst": ["=1"]}}  # fmt: skip
    conn.execute("UPDATE TrialJobEvent SET data = ? WHERE trialJobId = 'T00000' AND "
                 "event = 'WAITING'", (json.dumps(hp),))  # fmt: skip
    conn.execute("UPDATE MetricData SET data = ? WHERE trialJobId = 'T00001' AND type = 'FINAL'",
                 ("=cmd|' /C calc'!A0",))  # fmt: skip
    conn.commit()
    conn.close()
    from synthetic_nni import write_registry

    write_registry(nni_dir, {"expA": {}, "expB": {}, "expC": {}, "evilCsv": {}})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").status_code == 200
        r = c.get("/api/trials.csv", params={"experiment": "evilCsv"})
        assert r.status_code == 200
        rows = {row["trial_job_id"]: row for row in csv.DictReader(io.StringIO(r.text))}
        t0, t1 = rows["T00000"], rows["T00001"]
        assert t0["param.note"] == "'=HYPERLINK(\"http://x\")"
        assert (t0["param.p"], t0["param.m"], t0["param.a"]) == ("'+1", "'-2+3", "'@SUM(A1)")
        assert t0["param.t"] == "'\tx" and t0["param.ok"] == "fine"
        assert t0["param.lst"] == '["=1"]'  # JSON text, starts with '[': left alone
        assert t1["final_raw"].startswith("'=cmd|")
        # Numbers are numbers (a negative one is not text to neutralise).
        assert float(t0["val_error"]) > 0
        for line in r.text.splitlines()[1:]:
            for cell in next(csv.reader([line])):
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
        # Every trial of every experiment, streamed: the same rows as the JSON listing.
        everything = list(csv.DictReader(io.StringIO(c.get("/api/trials.csv").text)))
        assert len(everything) == 80 + 50 + 30 + 3


def test_csv_rows_are_read_in_batches(client, monkeypatch):
    """Bounded memory: the export reads its rows a batch at a time (yield_per), never all."""
    from storage.queries import trials as queries

    monkeypatch.setattr(queries, "_CSV_BATCH", 7)
    seen: list[int] = []
    real = queries.Session.execute

    def spy(self, statement, *args, **kwargs):  # records the batch size of each query
        opts = getattr(statement, "_execution_options", {}) or {}
        seen.append(opts.get("yield_per", 0))
        return real(self, statement, *args, **kwargs)

    monkeypatch.setattr(queries.Session, "execute", spy)
    r = client.get("/api/trials.csv")
    assert r.status_code == 200 and len(r.text.splitlines()) == 161
    assert seen.count(7) == 2  # the header pass and the row pass


def test_non_finite_numbers_never_reach_a_page_and_links_are_encoded(client, db_url):
    from sqlalchemy import update

    from storage.db import Database
    from storage.models import Trial, TrialLayer

    # An older database may hold what today's ingest refuses to store: inf and NaN.
    db = Database(db_url)
    with db.session_scope() as s:
        if db.engine.dialect.name == "sqlite":
            s.execute(update(TrialLayer).values(lam=float("inf")))
            s.execute(update(Trial).values(intermediate=[1.0, 2.0]))
    db.dispose()
    page = client.get("/experiments/expA")
    assert page.status_code == 200
    blob = re.search(r'<script type="application/json" id="exp-data">(.*?)</script>', page.text)
    assert blob is not None
    data = json.loads(blob.group(1), parse_constant=lambda c: pytest.fail(f"{c} in the page"))
    assert isinstance(data, dict) and data["points"]["trial"]
    if db_url.startswith("sqlite"):  # the inf λ became null, the page still has every trial
        lams = [v for col in data["points"]["lam"].values() for v in col]
        assert None in lams and all(v is None or v < float("inf") for v in lams)
    for link in re.findall(r'href="([^"]+)"', client.get("/").text + page.text):
        path = urllib.parse.urlsplit(link).path
        assert all(seg == urllib.parse.quote(urllib.parse.unquote(seg), safe="")
                   for seg in path.split("/")), link  # fmt: skip


def test_links_encode_ids_and_names(settings, tmp_path):
    from synthetic_nni import write_registry

    nni_dir = settings.nni_dir
    write_nni_sqlite(nni_dir / "odd" / "db" / "nni.sqlite", "odd", n_trials=2, seed=1,
                     model="a/b?c#d%e", dataset="x%y")  # fmt: skip
    write_registry(nni_dir, {"expA": {}, "odd": {}})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").status_code == 200
        html = c.get("/").text
        assert 'href="/models/a%2Fb%3Fc%23d%25e/x%25y"' in html
        assert c.get("/models/a%2Fb%3Fc%23d%25e/x%25y").status_code in (200, 404)


def test_report_csv_neutralises_formula_cells(settings, tmp_path):
    # A model and a data set named like formulas, from an imported file: text in the CSV.
    path = tmp_path / "evilReport" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "evilReport", n_trials=6, seed=2, model="=HYPERLINK(\"x\")",
                     dataset="@SUM(A1)")  # fmt: skip
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        r = c.post("/api/import", content=path.read_bytes(),
                   headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert r.status_code == 200, r.text
        rows = list(csv.reader(io.StringIO(c.get("/api/report/csv").text)))
    cells = [cell for row in rows for cell in row]
    assert "'=HYPERLINK(\"x\")" in cells and "'@SUM(A1)" in cells
    assert not any(cell.startswith(("=", "@", "+")) for cell in cells)
