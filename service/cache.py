"""Cache of the (model, dataset) answers, as JSON bytes, keyed by the database's data version.

Those answers change only when an ingest changes results, which bumps ``data_version`` in the
same transaction. The version is read at most every ``version_ttl`` seconds (and at once after
this process's own sync changed something), so a hit touches neither the database nor a worker
thread: that is what keeps p99 latency low under concurrent requests. A sync run by another
process (the CLI) is seen within ``version_ttl``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from storage.db import Database
from storage.queries import data_version


class ResponseCache:
    def __init__(
        self,
        db: Database,
        version_ttl: float = 1.0,
        max_entries: int = 2048,
        max_bytes: int = 256 * 2**20,
    ) -> None:
        self.db = db
        self.version_ttl = version_ttl
        self.max_entries = max_entries
        # The experiment page's trial columns are MBs each: the bound is on bytes as well.
        self.max_bytes = max_bytes
        self._size = 0
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = -float("inf")

    def invalidate(self) -> None:
        """Re-read the data version on the next request (our own sync changed data)."""
        self._checked_at = -float("inf")

    def _read_version(self) -> int:
        with self.db.session_scope() as s:
            return data_version(s)

    async def _current_version(self) -> int:
        now = time.monotonic()
        if now - self._checked_at > self.version_ttl:
            self._version = await asyncio.to_thread(self._read_version)
            self._checked_at = now
        return self._version

    async def json(self, key: Hashable, compute: Callable[[Session], BaseModel]) -> Response:
        body = await self.bytes(key, lambda s: compute(s).model_dump_json().encode())
        return Response(body, media_type="application/json")

    async def bytes(self, key: Hashable, compute: Callable[[Session], bytes]) -> bytes:
        """``compute``'s bytes for ``key``, computed at most once per data version."""
        version = await self._current_version()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == version:
                self._entries.move_to_end(key)
                return hit[1]

        def run() -> bytes:
            with self.db.session_scope(snapshot=True) as s:
                return compute(s)

        body = await asyncio.to_thread(run)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old[1])
            self._entries[key] = (version, body)
            self._size += len(body)
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries or self._size > self.max_bytes
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._size -= len(dropped)
        return body
