"""schemathesis against the service's own OpenAPI, on a small seeded database: whatever the
generated request (valid or not, with and without the write token), no response is a 5xx."""

from __future__ import annotations

import collections
import itertools

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation

from service.app import create_app

TOKEN = "fuzz-token-0123456789abcdef"
# Per operation and mode (15 operations x 2): bounded so the run takes well under two minutes
# on 2 cores.
EXAMPLES = 40


@pytest.fixture
def fuzz_app(settings):
    # schemathesis's ASGI client addresses the app as "testserver".
    app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN),
                                                 "allowed_hosts": "testserver"}))  # fmt: skip
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/api/sync", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and r.json()["inserted"] == 160
    return app


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_5xx_for_any_generated_request(fuzz_app, db_url):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    failures: list[str] = []
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 12  # every route is in the schema, the writes included

    def fuzz(op: APIOperation, mode: GenerationMode) -> None:
        label = f"{op.method.upper()} {op.path}"

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=op.as_strategy(generation_mode=mode), with_token=...)
        def run(case: schemathesis.Case, with_token: bool) -> None:
            headers = {"Authorization": f"Bearer {TOKEN}"} if with_token else {}
            response = case.call(headers=headers)
            statuses[(label, response.status_code)] += 1
            if response.status_code >= 500:
                failures.append(f"{label} -> {response.status_code}: {case.as_curl_command()}")

        try:
            run()
        except Unsatisfiable:
            # No invalid request exists for an operation without parameters or body.
            assert mode is GenerationMode.NEGATIVE and not op.query and not op.body, label

    # Positive: valid requests (they reach the queries); negative: invalid ones (the 422 paths).
    for op, mode in itertools.product(operations, list(GenerationMode)):
        fuzz(op, mode)
    total = sum(statuses.values())
    by_code = collections.Counter()
    for (_, code), n in statuses.items():
        by_code[code] += n
    print(f"\nschemathesis: {total} cases over {len(operations)} operations, "
          f"status codes {dict(sorted(by_code.items()))}")  # fmt: skip
    assert not failures, "\n".join(failures[:20])
    # The fuzzing reached past validation and auth: successful reads and writes happened.
    assert by_code[200] > 0 and by_code[422] > 0 and by_code[401] > 0


def test_what_the_fuzzer_found_stays_fixed(client):
    # An offset beyond 64 bits was a 500 (SQLite overflow); now a 422 naming the range.
    r = client.get("/api/experiments", params={"offset": 2**63})
    assert r.status_code == 422 and "offset" in r.text
    # A non-latin-1 filter ended up in the CSV's Content-Disposition header: a 500.
    r = client.get("/api/trials.csv", params={"model": "\u0100x"})
    assert r.status_code == 200 and 'filename="trials-_x.csv"' in r.headers["content-disposition"]
