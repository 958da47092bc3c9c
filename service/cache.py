"""Cache of the answers, as JSON bytes, keyed by the database's data version; and the workers
that compute them.

Answers change only when an ingest changes results, which bumps ``data_version`` in the same
transaction. The version is read at most every ``version_ttl`` seconds (and at once after this
process's own sync changed something), on a thread of its own, so a hit touches neither the
database nor a worker that may be busy: that keeps p99 latency low under concurrent requests. A
sync run by another process (the CLI) is seen within ``version_ttl``.

Misses are computed on bounded pools, never on the server's request threads: ``heavy`` answers
(importance, the report, large plot columns) on a few workers of their own, so that they cannot
starve the cheap ones (best config, compare) or ``/api/health``. Identical concurrent requests
share one computation. A request waits at most ``deadline`` seconds (then a 503 that says the
answer is still being computed and will be cached); a computation nobody waits for any more is
cancelled if it has not started, and at most ``workers`` run at once otherwise.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from storage.db import Database
from storage.queries import data_version


class AnswerBusy(Exception):
    """No answer within the deadline, or too many computations queued: try again (a 503)."""


@dataclass
class _Flight:
    """One computation in progress, shared by every request that asks for the same answer."""

    future: Future[bytes]
    waiters: int = 0
    started: threading.Event = field(default_factory=threading.Event)


class AnswerPool:
    """A bounded thread pool with a queue limit: ``max_queued`` computations at most."""

    def __init__(self, name: str, workers: int, max_queued: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self.max_queued = max_queued
        self.queued = 0
        self._lock = threading.Lock()

    def submit(self, run: Callable[[], bytes], started: threading.Event) -> Future[bytes]:
        with self._lock:
            if self.queued >= self.max_queued:
                raise AnswerBusy(
                    f"the service is computing {self.queued} answers already; try again shortly"
                )
            self.queued += 1

        def job() -> bytes:
            started.set()
            return run()

        future = self.executor.submit(job)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[bytes]) -> None:
        with self._lock:
            self.queued -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class ResponseCache:
    def __init__(
        self,
        db: Database,
        version_ttl: float = 1.0,
        max_entries: int = 2048,
        max_bytes: int = 256 * 2**20,
        workers: int = 4,
        heavy_workers: int = 2,
        deadline: float = 30.0,
    ) -> None:
        self.db = db
        self.version_ttl = version_ttl
        self.max_entries = max_entries
        # The experiment page's trial columns are MBs each: the bound is on bytes as well.
        self.max_bytes = max_bytes
        self.deadline = deadline
        self._size = 0
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._version = -1
        self._checked_at = -float("inf")
        self._version_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsr-version")
        self._version_read: tuple[asyncio.AbstractEventLoop, asyncio.Future[int]] | None = None
        self._pools = {
            False: AnswerPool("nsr-answer", workers, max_queued=16 * workers),
            True: AnswerPool("nsr-heavy", heavy_workers, max_queued=4 * heavy_workers),
        }
        self._flights: dict[tuple[Hashable, int], _Flight] = {}

    def invalidate(self) -> None:
        """Re-read the data version on the next request (our own sync changed data)."""
        self._checked_at = -float("inf")

    def close(self) -> None:
        self._version_reader.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools.values():
            pool.shutdown()

    def _read_version(self) -> int:
        with self.db.session_scope() as s:
            return data_version(s)

    async def _current_version(self) -> int:
        now = time.monotonic()
        if now - self._checked_at <= self.version_ttl:
            return self._version
        # One read at a time however many requests find the version stale: each reading it
        # would queue behind the others on the reader's one thread.
        loop = asyncio.get_running_loop()
        pending = self._version_read
        if pending is None or pending[0] is not loop:
            future = loop.run_in_executor(self._version_reader, self._read_version)
            pending = self._version_read = (loop, future)
            future.add_done_callback(lambda f: self._version_done(f, now))
        return await asyncio.shield(pending[1])

    def _version_done(self, future: asyncio.Future[int], started: float) -> None:
        if self._version_read is not None and self._version_read[1] is future:
            self._version_read = None
        if not future.cancelled() and future.exception() is None:
            self._version = future.result()
            self._checked_at = started

    async def json(
        self, key: Hashable, compute: Callable[[Session], BaseModel], *, heavy: bool = False
    ) -> Response:
        body = await self.bytes(key, lambda s: compute(s).model_dump_json().encode(), heavy=heavy)
        return Response(body, media_type="application/json")

    async def bytes(
        self, key: Hashable, compute: Callable[[Session], bytes], *, heavy: bool = False
    ) -> bytes:
        """``compute``'s bytes for ``key``, computed at most once per data version."""
        version = await self._current_version()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] == version:
                self._entries.move_to_end(key)
                return hit[1]
            flight = self._flights.get((key, version))
            if flight is None:
                flight = self._start(key, version, compute, heavy)
            flight.waiters += 1
        try:
            return await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(flight.future)), self.deadline
            )
        except TimeoutError:
            raise AnswerBusy(
                f"this answer takes over {self.deadline:g} s; it is still being computed and "
                "will be cached: ask again shortly"
            ) from None
        finally:
            with self._lock:
                flight.waiters -= 1
                if flight.waiters == 0 and not flight.started.is_set() and flight.future.cancel():
                    # Nobody waits for it any more (timed out, or the client went away).
                    self._flights.pop((key, version), None)

    def _start(
        self, key: Hashable, version: int, compute: Callable[[Session], bytes], heavy: bool
    ) -> _Flight:
        """A new computation of ``key`` (called with the lock held). The worker stores its own
        result, so nothing that needs the lock runs in the thread that holds it."""

        def run() -> bytes:
            try:
                with self.db.session_scope(snapshot=True) as s:
                    body = compute(s)
            except BaseException:
                with self._lock:
                    self._flights.pop((key, version), None)
                raise
            with self._lock:
                self._flights.pop((key, version), None)
                self._put(key, version, body)
            return body

        started = threading.Event()
        flight = _Flight(self._pools[heavy].submit(run, started), started=started)
        self._flights[(key, version)] = flight
        return flight

    def _put(self, key: Hashable, version: int, body: bytes) -> None:
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
