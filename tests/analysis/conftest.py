from __future__ import annotations

import pytest

from storage.db import Database


@pytest.fixture
def db(db_url):
    """A migrated, empty database: SQLite and PostgreSQL (``db_url`` is parametrized)."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()
