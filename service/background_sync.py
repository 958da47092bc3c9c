"""Background sync: one pass at a time (a lock shared with POST /api/sync), every
``sync_interval`` seconds, in a worker thread so requests keep being served."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from storage.db import Database
from storage.schemas import SyncReport
from storage.sync import sync_all

log = logging.getLogger(__name__)


class Syncer:
    def __init__(
        self, db: Database, nni_dir: Path, on_change: Callable[[], None] | None = None
    ) -> None:
        self.db = db
        self.nni_dir = nni_dir
        self.on_change = on_change
        self._lock = threading.Lock()
        self.last: SyncReport | None = None

    def run_once(self) -> SyncReport:
        with self._lock:
            self.last = sync_all(self.db, self.nni_dir)
            if self.on_change is not None and (
                self.last.inserted or self.last.updated or self.last.experiments > self.last.skipped
            ):
                self.on_change()
            return self.last

    async def loop(self, interval: float) -> None:
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:  # noqa: BLE001 - the loop must outlive any one failed pass
                log.exception("background sync failed")
            await asyncio.sleep(interval)
