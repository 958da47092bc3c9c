"""Write auth: with NSR_API_TOKEN set, every endpoint that writes (sync, import, delete) needs the
bearer token and says so in a 401; reads stay open. Delete and import work on both back ends."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from synthetic_nni import write_nni_sqlite

from service.app import create_app
from service.settings import Settings

TOKEN = "s3cret-test-token-0123456789"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def authed(settings):
    app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync", headers=GOOD).status_code == 200
        yield c


def upload(tmp_path, nni_id="expU", n_trials=7):
    path = tmp_path / nni_id / "db" / "nni.sqlite"
    write_nni_sqlite(path, nni_id, n_trials=n_trials, seed=5)
    return path.read_bytes()


OCTETS = "application/octet-stream"
WRITES = [
    ("post", "/api/sync", {}),
    ("post", "/api/import", {"content": b"x", "headers": {"Content-Type": OCTETS}}),
    ("delete", "/api/experiments/expA", {}),
    ("post", "/api/models/mlp4/digits/confirm", {}),
]  # fmt: skip


@pytest.mark.parametrize("method,path,kw", WRITES, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize(
    "auth", [None, "Bearer nope", "Basic czNjcmV0", "Bearer n\xe9pe".encode("latin-1"), "Bearer"]
)
def test_every_write_needs_the_token(authed, method, path, kw, auth):
    kw = dict(kw)  # the parameter dict is shared by every case
    headers = dict(kw.pop("headers", {}))
    if auth is not None:
        headers["Authorization"] = auth
    r = getattr(authed, method)(path, headers=headers, **kw)
    assert r.status_code == 401, r.text
    assert "Authorization: Bearer <token>" in r.json()["detail"]
    assert "NSR_API_TOKEN" in r.json()["detail"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Nothing was written: expA is still there with all its trials.
    assert authed.get("/api/experiments/expA").json()["n_trials"] == 80


def test_reads_stay_open_and_openapi_marks_the_writes(authed):
    for path in ("/api/experiments", "/api/trials", "/api/models", "/api/models/mlp4/digits/"
                 "best-config", "/api/trials.csv", "/", "/api/health"):  # fmt: skip
        assert authed.get(path).status_code == 200, path
    spec = authed.get("/openapi.json").json()
    secured = {(m, p) for p, ops in spec["paths"].items() for m, op in ops.items()
               if op.get("security")}  # fmt: skip
    assert secured == {("post", "/api/sync"), ("post", "/api/import"),
                       ("delete", "/api/experiments/{nni_id}"),
                       ("post", "/api/models/{model}/{dataset}/confirm")}  # fmt: skip


def test_delete_with_token_removes_the_experiment_and_its_answers(authed):
    before = authed.get("/api/models/mlp4/digits/best-config").json()["n_trials"]
    assert authed.delete("/api/experiments/expA", headers=GOOD).status_code == 204
    assert authed.get("/api/experiments/expA").status_code == 404
    assert authed.get("/api/trials", params={"experiment": "expA"}).status_code == 404
    # The cached answer follows at once, and no orphan trial or layer row is left.
    after = authed.get("/api/models/mlp4/digits/best-config").json()
    assert after["n_trials"] < before and after["trial"]["experiment"] == "expB"
    again = authed.delete("/api/experiments/expA", headers=GOOD)
    assert again.status_code == 404 and "expA" in again.json()["detail"]
    # The experiment is still in NNI's registry: the next sync brings it back whole.
    assert authed.post("/api/sync", headers=GOOD).json()["inserted"] == 80
    assert authed.get("/api/models/mlp4/digits/best-config").json()["n_trials"] == before


def test_import_uploaded_nni_sqlite_is_idempotent(authed, tmp_path):
    body = upload(tmp_path)
    headers = {**GOOD, "Content-Type": "application/octet-stream"}
    r = authed.post("/api/import", content=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"experiment": "expU", "inserted": 7, "updated": 0, "unchanged": 0}
    assert authed.get("/api/experiments/expU").json()["n_trials"] == 7
    again = authed.post("/api/import", content=body, headers=headers).json()
    assert again["inserted"] == 0 and again["unchanged"] == 7


@pytest.mark.parametrize(
    "body", [b"", b"not a database at all", b"SQLite format 3\x00" + b"\0" * 200]
)
def test_import_of_junk_is_422_with_a_message(authed, body):
    r = authed.post("/api/import", content=body,
                    headers={**GOOD, "Content-Type": "application/octet-stream"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert "NNI experiment database" in r.json()["detail"] or "empty body" in r.json()["detail"]


def test_import_over_the_size_limit_is_413(settings, tmp_path):
    s = settings.model_copy(update={"max_import_mb": 1})
    with TestClient(create_app(s), base_url="http://127.0.0.1") as c:
        r = c.post("/api/import", content=b"\0" * (1024 * 1024 + 1),
                   headers={"Content-Type": OCTETS})  # fmt: skip
        assert r.status_code == 413 and "NSR_MAX_IMPORT_MB" in r.json()["detail"]


def test_without_a_token_writes_are_open_and_bind_is_loopback(client, tmp_path):
    # No NSR_API_TOKEN: the service trusts whoever can reach it, which is why it binds 127.0.0.1.
    assert Settings(_env_file=None).host == "127.0.0.1"
    assert client.delete("/api/experiments/expC").status_code == 204


def test_empty_token_means_no_token_and_network_bind_without_token_is_flagged():
    assert Settings(_env_file=None, api_token="").api_token is None
    assert not Settings(_env_file=None).open_to_network  # 127.0.0.1
    assert Settings(_env_file=None, host="0.0.0.0").open_to_network
    assert not Settings(_env_file=None, host="0.0.0.0", api_token=TOKEN).open_to_network
