from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from storage.db import Database, alembic_config


def test_migrate_is_idempotent_and_reaches_head(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.sqlite'}")
    db.migrate()
    db.migrate()
    head = ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    insp = inspect(db.engine)
    assert {"experiments", "trials", "trial_layers"} <= set(insp.get_table_names())
    assert "ix_trials_md_val" in {i["name"] for i in insp.get_indexes("trials")}
    db.dispose()
