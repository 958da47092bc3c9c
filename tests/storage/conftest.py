from __future__ import annotations

import pytest

from storage.db import Database


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'nsr.sqlite'}")
    database.migrate()
    yield database
    database.dispose()
