from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, env=None):
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_help_explains_commands():
    out = cli("--help")
    assert out.returncode == 0
    for word in ("sync", "serve", "init", "NSR_DATABASE_URL"):
        assert word in out.stdout
    assert "nni.sqlite" in cli("sync", "--help").stdout


def test_sync_twice(tmp_path, synthetic_nni_dir):
    env = {"NSR_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
           "NSR_NNI_DIR": str(synthetic_nni_dir)}  # fmt: skip
    first = cli("sync", env=env)
    assert first.returncode == 0, first.stderr
    assert "3 experiments (0 unchanged), 160 trials new" in first.stdout
    second = cli("sync", env=env)
    assert "3 experiments (3 unchanged), 0 trials new, 0 updated" in second.stdout


def test_errors_are_one_line_without_traceback(tmp_path):
    bad_port = cli("init", env={"NSR_PORT": "eighty"})
    assert bad_port.returncode == 2
    assert bad_port.stderr.strip().startswith("error: bad setting port (NSR_PORT)")
    assert len(bad_port.stderr.strip().splitlines()) == 1
    down = cli("--database-url", "postgresql+psycopg://u:p@127.0.0.1:1/nsr", "init")
    assert down.returncode == 2 and "Traceback" not in down.stderr
    assert down.stderr.startswith("error: cannot migrate database")
    assert len(down.stderr.strip().splitlines()) == 1


def test_report_confirm_and_search_space_commands(tmp_path, synthetic_nni_dir):
    env = {"NSR_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}",
           "NSR_NNI_DIR": str(synthetic_nni_dir), "XDG_DATA_HOME": str(tmp_path)}  # fmt: skip
    assert cli("sync", env=env).returncode == 0
    md = cli("report", env=env)
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# nsr-search report") and "Vanilla vs NSR" in md.stdout
    assert "†" in md.stdout  # search trials only: marked unconfirmed
    csv_out = tmp_path / "r.csv"
    assert cli("report", "--format", "csv", "--output", str(csv_out), env=env).returncode == 0
    assert csv_out.read_text().startswith("model,dataset,budget,table,row")
    plan = cli("confirm", "mlp4", "digits", "--top-k", "2", "--seeds", "3", env=env)
    assert plan.returncode == 0, plan.stderr
    assert "9 trials (3 configurations x seeds [1000, 1001, 1002])" in plan.stdout
    written = list((tmp_path / "nsr-search" / "confirmations").glob("confirm-mlp4-digits-*.yml"))
    assert len(written) == 1 and "Batch" in written[0].read_text()
    bad = cli("confirm", "mlp4", "digits", "--seeds", "1", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: seeds=1 is out of range: allowed 2..50 (a spread needs two)")
    unknown = cli("search-space", "mlp4", "nope", env=env)
    assert unknown.returncode == 2 and "unknown dataset 'nope'" in unknown.stderr
