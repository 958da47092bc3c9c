"""Cache of the answers, as JSON bytes, keyed by the database's data version; and the workers
that compute them.

Answers change only when an ingest changes results, which bumps ``data_version`` in the same
transaction. The version is read at most every ``version_ttl`` seconds (and at once after this
process's own sync changed something), on a thread of its own, so a hit touches neither the
database nor a worker that may be busy: that keeps p99 latency low under concurrent requests. A
sync run by another process (the CLI) is seen within ``version_ttl``.

Misses are computed on bounded pools, never on the server's request threads:
- cheap answers (best config, compare) on a few threads;
- ``heavy`` answers (importance, the report, large plot columns) in worker *processes* of their
  own, at a lower CPU priority (``nice``). Threads were not enough: a fANOVA forest or a report
  over 300k trials is Python work that holds the GIL, and with two of them running the server's
  event loop waited seconds for it, so ``/api/health`` and cached hits did too. In a process of
  its own the work cannot take the GIL, and the scheduler gives the server's process the CPU
  first. A heavy computation is therefore a picklable callable (a module-level function, or a
  ``functools.partial`` of one with plain arguments); each worker opens the database itself.
  An in-memory SQLite database exists in this process only: its heavy answers use threads.
Identical concurrent requests share one computation, and so do requests at a newer data version
while that computation has not started: it reads the database when it starts, and returns the
version it read (one snapshot for both), which labels the cached answer. So however often
syncs bump the version, one answer has at most one computation waiting to start. A request
waits at most ``deadline`` seconds (then a 503 that says the answer is still being computed and
will be cached); a computation nobody waits for any more is cancelled if it has not started,
and at most ``workers`` run at once otherwise. A worker that dies (killed, out of memory) fails
its answers with a 503 and the pool is rebuilt for the next request.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import os
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from storage.db import Database
from storage.queries import data_version

Compute = Callable[[Session], bytes]
Versioned = tuple[int, bytes]  # an answer and the data version it was read at


class AnswerBusy(Exception):
    """No answer within the deadline, or too many computations queued: try again (a 503)."""


# ---------------------------------------------------------------- worker processes
_worker_db: Database | None = None
# A worker runs this many answers, then is replaced: memory a computation leaves behind
# (allocator fragmentation, caches of the libraries) is returned to the system.
TASKS_PER_WORKER = 128
# Positive: the scheduler serves the server's own process first.
WORKER_NICENESS = 10
# What the heavy answers import, loaded before the worker lowers its priority: at nice +10 on a
# machine busy with trials, these imports took seconds while the answers queued behind them.
WORKER_PRELOAD = ("storage.queries", "analysis.report", "analysis.importance", "service.report")


# How often a worker checks that the service that started it is alive.
PARENT_CHECK_SECONDS = 1.0


def _exit_with(parent: int) -> None:
    """Ends this worker once ``parent`` is gone. A service killed with SIGKILL (or by the OOM
    killer) never shuts its pool down: its workers, re-parented to init, were left running and
    polling for good, one set per killed service."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _worker_start(url: str, parent: int) -> None:
    """Initializer of each worker process: its imports and engine, one BLAS thread, a watch on
    the service that started it, then a lower priority."""
    global _worker_db
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="nsr-parent").start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    for name in WORKER_PRELOAD:
        importlib.import_module(name)
    _worker_db = Database(url)
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # not permitted here: same priority, still off the server's GIL
        pass


def compute_with(db: Database, compute: Compute) -> Versioned:
    """``compute``'s bytes and the data version they were read at, from one snapshot."""
    with db.session_scope(snapshot=True) as s:
        version = data_version(s)
        return version, compute(s)


def _compute_in_worker(compute: Compute) -> Versioned:
    assert _worker_db is not None, "worker started without _worker_start"
    return compute_with(_worker_db, compute)


@dataclass(frozen=True)
class JsonBytes:
    """``compute``'s model as JSON bytes; picklable when ``compute`` is."""

    compute: Callable[[Session], BaseModel]

    def __call__(self, session: Session) -> bytes:
        return self.compute(session).model_dump_json().encode()


def in_memory(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


class AnswerPool:
    """A bounded pool of threads (``processes`` off) or of worker processes, with a queue limit:
    ``max_queued`` computations at most."""

    def __init__(
        self, name: str, db: Database, workers: int, max_queued: int, *, processes: bool
    ) -> None:
        self.name = name
        self.db = db
        self.workers = workers
        self.processes = processes
        self.max_queued = max_queued
        self.queued = 0
        self._lock = threading.Lock()
        self._executor: Executor | None = None  # started on first use

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.processes:
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers,
                    # Not fork: the server's threads, locks and open connections must not be
                    # copied into a worker.
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_start,
                    initargs=(self.db.url, os.getpid()),
                    max_tasks_per_child=TASKS_PER_WORKER,
                )
            else:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
        return self._executor

    def _submit(self, compute: Compute) -> Future[Versioned]:
        if self.processes:
            return self._pool().submit(_compute_in_worker, compute)
        return self._pool().submit(compute_with, self.db, compute)

    def _discard(self) -> None:
        """Drop a broken process pool (a worker died): the next submit starts a new one."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def submit(self, compute: Compute) -> Future[Versioned]:
        if self.processes:
            try:
                pickle.dumps(compute)
            except Exception as exc:  # a programming error, not the client's
                raise TypeError(
                    f"a heavy answer runs in a worker process and must be picklable: {exc}"
                ) from exc
        with self._lock:
            if self.queued >= self.max_queued:
                raise AnswerBusy(
                    f"the service is computing {self.queued} answers already; try again shortly"
                )
            self.queued += 1
            try:
                try:
                    future = self._submit(compute)
                except BrokenProcessPool:
                    # A worker died since the last answer: a new pool for this one.
                    self._discard()
                    future = self._submit(compute)
            except BaseException:
                self.queued -= 1
                raise
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[Versioned]) -> None:
        with self._lock:
            self.queued -= 1
            if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
                self._discard()

    def shutdown(self) -> None:
        with self._lock:
            self._discard()


@dataclass
class _Flight:
    """One computation in progress, shared by every request that asks for the same answer."""

    future: Future[Versioned]
    version: int  # the data version known when it was submitted
    waiters: int = 0

    def serves(self, version: int) -> bool:
        """Whether its answer is at ``version`` or newer: it was asked at that version, or it has
        not started, so it will read the database as it is by then."""
        return self.version >= version or not self.future.running()


class ResponseCache:
    def __init__(
        self,
        db: Database,
        version_ttl: float = 1.0,
        max_entries: int = 2048,
        max_bytes: int = 256 * 2**20,
        workers: int = 4,
        heavy_workers: int = 2,
        kept_workers: int = 1,
        deadline: float = 30.0,
        heavy_processes: bool | None = None,
    ) -> None:
        """``heavy_processes``: heavy answers in worker processes (default: unless the database
        is in memory, which a worker could not open). ``kept_workers``: the lane of the heavy
        answers every reader asks for (``keep``: the report, an experiment's plot columns), apart
        from the open-ended ones (a filter per request), so that a flood of distinct importance
        queries cannot hold the report or an experiment page for minutes."""
        self.db = db
        self.version_ttl = version_ttl
        self.max_entries = max_entries
        # The experiment page's trial columns are MBs each: the bound is on bytes as well.
        self.max_bytes = max_bytes
        self.deadline = deadline
        self._size = 0
        self._entries: OrderedDict[Hashable, tuple[int, bytes]] = OrderedDict()
        # Re-entrant: a computation that is already done runs its callback (which takes the
        # lock) in the thread that submitted it, with the lock held.
        self._lock = threading.RLock()
        self._version = -1
        self._checked_at = -float("inf")
        self._version_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsr-version")
        self._version_read: tuple[asyncio.AbstractEventLoop, asyncio.Future[int]] | None = None
        if heavy_processes is None:
            heavy_processes = not in_memory(db.url)
        self._pools = {
            "cheap": AnswerPool("nsr-answer", db, workers, 16 * workers, processes=False),
            "heavy": AnswerPool(
                "nsr-heavy", db, heavy_workers, 4 * heavy_workers, processes=heavy_processes
            ),
            "kept": AnswerPool(
                "nsr-kept", db, kept_workers, 8 * kept_workers, processes=heavy_processes
            ),
        }
        self._flights: dict[Hashable, _Flight] = {}  # the newest computation of each key

    def invalidate(self) -> None:
        """Re-read the data version on the next request (our own sync changed data)."""
        self._checked_at = -float("inf")

    def close(self) -> None:
        """Stop the workers (the app's lifespan ends); a later request starts new ones."""
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
        self,
        key: Hashable,
        compute: Callable[[Session], BaseModel],
        *,
        heavy: bool = False,
        keep: bool = False,
    ) -> Response:
        body = await self.bytes(key, JsonBytes(compute), heavy=heavy, keep=keep)
        return Response(body, media_type="application/json")

    async def bytes(
        self,
        key: Hashable,
        compute: Callable[[Session], bytes],
        *,
        heavy: bool = False,
        keep: bool = False,
    ) -> bytes:
        """``compute``'s bytes for ``key``, computed at most once per data version.

        ``keep``: an answer of a small, fixed key set that every reader asks for (the report,
        an experiment's plot columns) is computed to the end even when its requesters gave up,
        so it lands in the cache; otherwise clients with short timeouts would cancel it again
        and again behind a busy pool. Open-ended answers (a filter per request) are cancelled
        when nobody waits for them."""
        version = await self._current_version()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] >= version:
                self._entries.move_to_end(key)
                return hit[1]
            flight = self._flights.get(key)
            if flight is None or not flight.serves(version):
                lane = ("kept" if keep else "heavy") if heavy else "cheap"
                flight = self._start(key, version, compute, lane)
            flight.waiters += 1
        try:
            _, body = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(flight.future)), self.deadline
            )
            return body
        except TimeoutError:
            raise AnswerBusy(
                f"this answer takes over {self.deadline:g} s; it is still being computed and "
                "will be cached: ask again shortly"
            ) from None
        except BrokenProcessPool:
            raise AnswerBusy(
                "the worker computing this answer stopped (killed or out of memory); ask again"
            ) from None
        finally:
            with self._lock:
                flight.waiters -= 1
                # cancel() fails once the computation runs: then it ends on its own, and at
                # most ``workers`` of them run at once.
                if flight.waiters == 0 and not keep and flight.future.cancel():
                    # Nobody waits for it any more (timed out, or the client went away).
                    self._forget(key, flight)

    def _start(self, key: Hashable, version: int, compute: Compute, lane: str) -> _Flight:
        """A new computation of ``key`` (called with the lock held); its result is stored by a
        callback when it lands. An older one still running ends on its own."""
        flight = _Flight(self._pools[lane].submit(compute), version)
        self._flights[key] = flight
        flight.future.add_done_callback(lambda f: self._landed(key, flight))
        return flight

    def _forget(self, key: Hashable, flight: _Flight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    def _landed(self, key: Hashable, flight: _Flight) -> None:
        with self._lock:
            self._forget(key, flight)
            future = flight.future
            if not future.cancelled() and future.exception() is None:
                self._put(key, *future.result())

    def _put(self, key: Hashable, version: int, body: bytes) -> None:
        current = self._entries.get(key)
        if current is not None and current[0] > version:
            return  # an older computation that ended after a newer one
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
