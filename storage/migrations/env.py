"""Alembic environment: runs against the engine put in ``config.attributes`` by storage.db.

Every upgrade is one transaction, so a crash or an error mid-way leaves the schema as it was:
- SQLite: the driver is told to issue no transaction statements of its own (by default it
  commits before some DDL), and the migration runs inside ``BEGIN IMMEDIATE``, which also makes a
  second process starting at the same moment wait for the first. Foreign keys are off meanwhile:
  batch mode copies tables, and dropping the old copy would otherwise cascade into child rows.
- PostgreSQL: DDL is transactional; a transaction-scoped advisory lock makes services that start
  together on one database migrate one after the other (the later ones find it at head).
"""

from alembic import context
from sqlalchemy import Connection, Engine, text

from storage.models import Base

config = context.config
target_metadata = Base.metadata
# Any constant shared by every nsr-search process: "nsr-migr" as a 64-bit integer.
MIGRATION_LOCK_KEY = 0x6E73722D6D696772


def _configure(connection: Connection) -> None:
    # render_as_batch: SQLite can only ALTER tables by copying them.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        transactional_ddl=True,
    )


def _migrate_sqlite(engine: Engine) -> None:
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        saved = raw.isolation_level  # type: ignore[attr-defined]
        raw.isolation_level = None  # type: ignore[attr-defined]
        try:
            raw.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: before BEGIN
            raw.execute("BEGIN IMMEDIATE")
            try:
                _configure(connection)
                context.run_migrations()
                broken = raw.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
            raw.isolation_level = saved  # type: ignore[attr-defined]


def _migrate_postgresql(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        _configure(connection)
        context.run_migrations()


def run_migrations_online() -> None:
    engine: Engine | None = config.attributes.get("engine")
    if engine is None:
        # Plain `alembic -x url=...` use from the command line.
        from storage.db import make_engine

        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
            "sqlalchemy.url"
        )
        engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        _migrate_sqlite(engine)
    elif engine.dialect.name == "postgresql":
        _migrate_postgresql(engine)
    else:
        with engine.begin() as connection:
            _configure(connection)
            context.run_migrations()


run_migrations_online()
