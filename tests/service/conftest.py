from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


@pytest.fixture
def synthetic_nni_dir(three_searches):
    return three_searches(80, 50, 30)


@pytest.fixture
def settings(db_url, synthetic_nni_dir):
    return Settings(database_url=db_url,
                    nni_dir=synthetic_nni_dir, sync_interval=0)  # fmt: skip


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").status_code == 200
        yield c
