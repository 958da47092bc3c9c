"""Starting NNI from the service (``confirm?start=true``) runs trials as the service's user: it
needs the write token even on loopback, where plain writes without a configured token are open."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

import service.api.models as models_api
from service.app import create_app
from service.quickstart import service_token
from service.settings import Settings
from storage.schemas import ConfirmationPlan, ConfirmationStarted

TOKEN = "start-test-token-0123456789"
CONFIRM = "/api/models/mlp4/digits/confirm"


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ConfirmationPlan]:
    """Plans handed to nnictl; nothing is really started."""
    plans: list[ConfirmationPlan] = []

    def fake_start(plan: ConfirmationPlan, settings: Settings) -> ConfirmationStarted:
        plans.append(plan)
        return ConfirmationStarted(plan=plan, started=True, nni_id="fake", nni_url=None,
                                   config_path=None)  # fmt: skip

    monkeypatch.setattr(models_api, "start_confirmation", fake_start)
    return plans


def test_without_a_configured_token_start_is_refused_and_the_plan_still_given(
    client: TestClient, started: list[ConfirmationPlan]
) -> None:
    r = client.post(CONFIRM, params={"start": "true"})
    assert r.status_code == 403 and "NSR_API_TOKEN" in r.json()["detail"]
    assert started == []
    plan = client.post(CONFIRM)
    assert plan.status_code == 200 and plan.json()["started"] is False


def test_with_a_configured_token_start_needs_it(
    settings: Settings, started: list[ConfirmationPlan]
) -> None:
    app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    good = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync", headers=good).status_code == 200
        assert c.post(CONFIRM, params={"start": "true"}).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * 30}
        assert c.post(CONFIRM, params={"start": "true"}, headers=wrong).status_code == 401
        assert started == []
        r = c.post(CONFIRM, params={"start": "true"}, headers=good)
        assert r.status_code == 200 and r.json()["nni_id"] == "fake"
        assert len(started) == 1


def test_quickstart_keeps_one_private_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("NSR_API_TOKEN", raising=False)
    first = service_token(Settings())
    assert len(first.get_secret_value()) >= 32
    path = tmp_path / "nsr-search" / "service.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert service_token(Settings()).get_secret_value() == first.get_secret_value()
    given = SecretStr("given-token-0123456789")
    assert service_token(Settings(api_token=given)) == given
