"""Engine, sessions and migrations. ``session_scope`` is the one place that commits, rolls back
and turns driver errors into our typed errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import Conflict, InvalidValue, StorageError, StorageUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the web server read while a sync writes; busy_timeout makes a writer wait for
    # another writer instead of failing at once; foreign keys are off by default in SQLite.
    # busy_timeout first: switching a fresh file to WAL takes a lock that a second process
    # opening it at the same moment must wait for, not fail on.
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def json_dumps(value: Any) -> str:
    """JSON columns through orjson (several times faster than json.dumps on the trials' curves
    and metrics); json for what orjson refuses (an int beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for a SQLite file, its directory is created and WAL is on."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"json_serializer": json_dumps}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False}
        # Concurrent web requests each need their own connection.
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py takes the engine from here, so a password with '%' never goes through ini parsing.
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest Alembic revision (idempotent)."""
    try:
        command.upgrade(alembic_config(engine), "head")
    except OperationalError as exc:
        raise StorageUnavailable(f"cannot migrate database {engine.url!r}: {exc.orig}") from exc


class Database:
    """An engine plus its session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def session_scope(self, *, snapshot: bool = False) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error.

        ``snapshot``: every query of the session sees the database as of its first one (an
        answer built from several queries is never half before and half after a concurrent
        write: one such mix was a 500). PostgreSQL: REPEATABLE READ; SQLite: an explicit BEGIN,
        since its driver runs each SELECT outside any transaction. For reads."""
        session = self.sessions()
        try:
            if snapshot:
                if self.engine.dialect.name == "sqlite":
                    session.connection().exec_driver_sql("BEGIN")
                else:
                    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session
            session.commit()
        except StorageError:
            session.rollback()
            raise
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"conflicting write: {exc.orig}") from exc
        except DataError as exc:
            # A value the column cannot hold (PostgreSQL: out of range, too long): the request's
            # fault, not the database's.
            session.rollback()
            raise InvalidValue(f"value not storable: {' '.join(str(exc.orig).split())}") from exc
        except (OperationalError, DBAPIError) as exc:
            session.rollback()
            raise StorageUnavailable(f"database error: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            session.rollback()
            raise StorageUnavailable(f"database error: {exc}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
