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
