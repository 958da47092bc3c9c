"""docker-compose.yml: Debian's docker-compose accepts it, and it wires what the README promises
(PostgreSQL with a named volume, NSR_DATABASE_URL at it, health checks, NNI dir read-only,
loopback-only port). The Dockerfile installs the way `make setup` does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]
ENV = {"POSTGRES_PASSWORD": "pw123", "NSR_API_TOKEN": "tok456-0123456789abcdef",
       "NNI_EXPERIMENTS_DIR": "/srv/nni"}


def compose_cmd() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:  # fmt: skip
        return ["docker", "compose"]
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail("docker-compose is missing in CI (.ci/run installs Debian's docker-compose)")
    pytest.skip("docker-compose is not installed (apt-get install docker-compose)")


def config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment and an empty env file (not a developer's .env): only what the test
    # gives counts.
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    (tmp_path / "empty.env").write_text("")
    return subprocess.run([*compose_cmd(), "-f", str(REPO / "docker-compose.yml"),
                           "--env-file", str(tmp_path / "empty.env"), "config"],
                          env={**base, **env}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_compose_config_passes_and_wires_postgres(tmp_path):
    out = config(ENV, tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    db, svc = cfg["services"]["db"], cfg["services"]["service"]
    assert db["image"].startswith("postgres:")
    assert any(str(v).startswith("pgdata:/var/lib/postgresql/data") for v in db["volumes"])
    assert "pgdata" in cfg["volumes"]
    env = svc["environment"]
    assert env["NSR_DATABASE_URL"] == "postgresql+psycopg://nsr:pw123@db:5432/nsr"
    assert env["NSR_API_TOKEN"] == ENV["NSR_API_TOKEN"] and env["NSR_NNI_DIR"] == "/nni-experiments"
    assert "/srv/nni:/nni-experiments:ro" in svc["volumes"]
    assert svc["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "/api/health" in " ".join(svc["healthcheck"]["test"])
    assert [str(p).split(":")[0] for p in svc["ports"]] == ["127.0.0.1"]
    assert svc["build"]["context"] == str(REPO)


@pytest.mark.parametrize("missing", sorted(ENV))
def test_compose_refuses_to_run_without_secrets_and_paths(tmp_path, missing):
    out = config({k: v for k, v in ENV.items() if k != missing}, tmp_path)
    assert out.returncode != 0 and missing in out.stderr


def test_dockerfile_installs_like_make_setup():
    """The image is built with the steps the README's setup (Makefile `setup`) runs."""
    make = (REPO / "Makefile").read_text()
    docker = (REPO / "Dockerfile").read_text()
    pip_steps = re.findall(r"python -m pip install (--quiet [^\n]*)", make)
    assert pip_steps, "Makefile setup has no pip steps?"
    for step in pip_steps:
        # The image needs no test tools: `-e ".[dev]"` becomes `-e .`.
        step = step.replace('-e ".[dev]"', "-e .")
        assert f"python -m pip install {step}" in docker, step
    # The image's Python is one the project supports (requires-python), 3.11 unless asked.
    default = re.search(r"^ARG PYTHON_VERSION=(3\.\d+)$", docker, re.MULTILINE)
    assert default and "FROM python:${PYTHON_VERSION}-slim" in docker
    supported = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(supported).contains(f"{default.group(1)}.0"), (default.group(1), supported)
    for path in ("pyproject.toml", "trials/", "storage/", "service/"):
        assert f"COPY {path}" in docker


def serve_as_in_the_image(
    cfg_env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`python -m service serve` with the environment compose gives the container and the
    Dockerfile's NSR_HOST=0.0.0.0 (what the container runs)."""
    assert "ENV NSR_HOST=0.0.0.0" in (REPO / "Dockerfile").read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSR_")}
    env.update({k: str(v) for k, v in cfg_env.items()}, NSR_HOST="0.0.0.0",
               NSR_NNI_DIR=str(tmp_path), PYTHONPATH=str(REPO))  # fmt: skip
    return subprocess.run([sys.executable, "-m", "service", "serve"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def example_env() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    return values


@pytest.mark.parametrize("override,why", [
    ({}, "placeholder"),  # .env.example copied as it is
    ({"POSTGRES_PASSWORD": "pw123real"}, "NSR_API_TOKEN is a placeholder"),
    ({"POSTGRES_PASSWORD": "pw123real", "NSR_API_TOKEN": "tok456"}, "at least 16"),
    # compose's ${NSR_API_TOKEN:?} accepts spaces: the service sees no token and refuses to listen
    # on 0.0.0.0 without one.
    ({"POSTGRES_PASSWORD": "pw123real", "NSR_API_TOKEN": "    "}, "refusing to listen"),
])  # fmt: skip
def test_the_service_refuses_placeholder_and_weak_secrets_from_compose(tmp_path, override, why):
    env = {**example_env(), "NNI_EXPERIMENTS_DIR": "/srv/nni", **override}
    out = config(env, tmp_path)
    assert out.returncode == 0, out.stderr  # compose itself cannot tell
    service_env = yaml.safe_load(out.stdout)["services"]["service"]["environment"]
    started = serve_as_in_the_image(service_env, tmp_path)
    assert started.returncode == 2 and why in started.stderr, started.stderr
    assert "Traceback" not in started.stderr and len(started.stderr.strip().splitlines()) == 1
