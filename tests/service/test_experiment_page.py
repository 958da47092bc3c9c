"""The experiment page's status line: a sync error of this experiment is shown, and NNI's UI is
linked only while its manager runs."""

from __future__ import annotations

import html
import os


def test_sync_error_is_shown_on_its_experiment_page(client, synthetic_nni_dir):
    page = client.get("/experiments/expA").text
    assert 'id="sync-error"' not in page and 'id="nni-ui"' not in page  # STOPPED: no NNI UI
    db_file = synthetic_nni_dir / "expA" / "db" / "nni.sqlite"
    db_file.write_bytes(b"not a database at all" * 100)
    os.utime(db_file, (1, 1))  # a new stamp: the next sync reads it again
    report = client.post("/api/sync").json()
    errors = [e for e in report["errors"] if e.startswith("expA: ")]
    assert errors, report
    page = client.get("/experiments/expA").text
    assert 'id="sync-error"' in page
    assert html.escape(errors[0][len("expA: "):]) in page
    # What was stored before is still there, and other experiments show no error.
    assert "80 trials" in page
    assert 'id="sync-error"' not in client.get("/experiments/expB").text


def test_page_cache_is_bounded_in_bytes(settings):
    import asyncio

    from service.cache import ResponseCache
    from storage.db import Database

    db = Database(settings.database_url)
    db.migrate()
    cache = ResponseCache(db, max_bytes=100)
    calls: list[str] = []

    def make(key: str, size: int):
        return lambda s: calls.append(key) or key.encode() * size

    async def run() -> None:
        assert await cache.bytes("a", make("a", 60)) == b"a" * 60
        assert await cache.bytes("a", make("a", 60)) == b"a" * 60  # a hit: not computed again
        await cache.bytes("b", make("b", 60))  # 120 bytes > 100: the oldest goes
        await cache.bytes("b", make("b", 60))
        await cache.bytes("a", make("a", 60))

    asyncio.run(run())
    db.dispose()
    assert calls == ["a", "b", "a"]
