from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from storage.db import Database, alembic_config


def test_migrate_is_idempotent_and_reaches_head(db_url):
    """Alembic upgrades an empty database to head on SQLite and on PostgreSQL alike."""
    db = Database(db_url)
    assert inspect(db.engine).get_table_names() == []  # really empty before
    db.migrate()
    db.migrate()
    head = ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        if db.engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        else:
            assert db.engine.dialect.name == "postgresql"
        assert conn.execute(text("SELECT version FROM data_version WHERE id = 1")).scalar() == 0
    insp = inspect(db.engine)
    assert {"experiments", "trials", "trial_layers", "data_version"} <= set(insp.get_table_names())
    assert "ix_trials_md_val" in {i["name"] for i in insp.get_indexes("trials")}
    # Foreign keys cascade on both: deleting an experiment takes its trials and layer rows.
    fks = {fk["referred_table"]: fk for fk in insp.get_foreign_keys("trials")}
    assert fks["experiments"]["options"].get("ondelete") == "CASCADE"
    db.dispose()


def test_services_starting_together_migrate_a_fresh_database_once(db_url):
    """Four processes migrate one empty database at the same moment: all succeed, the schema is
    at head once (PostgreSQL: the advisory lock; SQLite: BEGIN IMMEDIATE)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    # Each waits for a shared start time so the migrations really overlap.
    script = ("import sys, time; from storage.db import Database; db = Database(sys.argv[1]); "
              "db.engine.connect().close(); time.sleep(max(0, float(sys.argv[2]) - time.time())); "
              "db.migrate(); print('ok')")  # fmt: skip
    import time

    start = str(time.time() + 4.0)
    procs = [subprocess.Popen([sys.executable, "-c", script, db_url, start], env=env, cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    db = Database(db_url)
    head = ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()
    with db.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head]
        assert conn.execute(text("SELECT count(*) FROM data_version")).scalar() == 1
    db.dispose()


def test_a_failed_migration_leaves_the_database_as_it_was(db_url):
    """An upgrade that fails in its last step rolls back whole: no table of the earlier steps,
    no version row, and a later migrate completes. (SQLite's driver used to run DDL outside any
    transaction, which left a half-migrated database that would not start.)"""
    db = Database(db_url)
    with db.engine.begin() as conn:  # in the way of revision 0004's create_table
        conn.execute(text("CREATE TABLE sync_errors (x integer)"))
    try:
        db.migrate()
    except Exception:  # noqa: BLE001 - the failure is the point
        pass
    else:
        raise AssertionError("the migration did not fail")
    assert inspect(db.engine).get_table_names() == ["sync_errors"]
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE sync_errors"))
    db.migrate()
    assert {"experiments", "trials", "sync_errors"} <= set(inspect(db.engine).get_table_names())
    db.dispose()
