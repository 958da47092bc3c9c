"""The answer cache: one computation per (answer, data version) however many ask at once, a
deadline instead of a hung request, no deadlock when a computation ends at once, and heavy
answers in lower-priority worker processes that survive a dead worker.

The sharing and deadline cases use thread workers (``heavy_processes=False``) so that a test can
hold a computation with an Event; the process cases use module-level functions, which pickle."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from service.cache import AnswerBusy, ResponseCache
from storage.db import Database
from storage.errors import NotFound
from storage.models import DataVersion
from storage.queries import data_version

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'nsr.sqlite'}")
    database.migrate()
    yield database
    database.dispose()


def test_identical_concurrent_requests_share_one_computation(db: Database) -> None:
    cache = ResponseCache(db, heavy_processes=False)
    runs = []
    release = threading.Event()

    def compute(_session: object) -> bytes:
        runs.append(1)
        release.wait(10)
        return b"answer"

    async def ask_many() -> list[bytes]:
        asks = [asyncio.create_task(cache.bytes("k", compute, heavy=True)) for _ in range(8)]
        await asyncio.sleep(0.2)  # all eight are waiting on the one computation
        release.set()
        return await asyncio.gather(*asks)

    assert asyncio.run(ask_many()) == [b"answer"] * 8
    assert len(runs) == 1
    assert asyncio.run(cache.bytes("k", compute)) == b"answer" and len(runs) == 1  # a hit


def test_an_instant_computation_does_not_deadlock(db: Database) -> None:
    # Many computations that end before their callback is attached: each must still answer.
    cache = ResponseCache(db)

    async def ask(round_: int) -> list[bytes]:
        return await asyncio.gather(*(
            cache.bytes(("k", round_, i), lambda _s, i=i: str(i).encode()) for i in range(50)
        ))  # fmt: skip

    for round_ in range(6):  # 50 at a time: within the pool's queue bound
        answers = asyncio.run(asyncio.wait_for(ask(round_), 30))
        assert answers == [str(i).encode() for i in range(50)]


def test_past_the_deadline_the_request_gets_answer_busy_and_the_answer_is_cached(
    db: Database,
) -> None:
    cache = ResponseCache(db, deadline=0.2, heavy_workers=1, heavy_processes=False)
    release = threading.Event()

    def slow(_session: object) -> bytes:
        release.wait(10)
        return b"late"

    async def first() -> None:
        with pytest.raises(AnswerBusy, match="still being computed"):
            await cache.bytes("slow", slow, heavy=True)

    asyncio.run(first())
    release.set()

    async def again() -> bytes:
        for _ in range(100):
            try:
                return await cache.bytes("slow", slow, heavy=True)
            except AnswerBusy:
                await asyncio.sleep(0.05)
        raise AssertionError("never cached")

    assert asyncio.run(again()) == b"late"


class Blocker:
    """A computation that holds the one heavy thread until ``release`` is set."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, _session: object) -> bytes:
        self.release.wait(10)
        return b"b"


def test_a_queued_computation_nobody_waits_for_is_cancelled(db: Database) -> None:
    cache = ResponseCache(db, deadline=0.2, heavy_workers=1, heavy_processes=False)
    blocker = Blocker()
    ran = []

    def queued(_session: object) -> bytes:
        ran.append(1)
        return b"q"

    async def scenario() -> None:
        busy = asyncio.create_task(cache.bytes("blocker", blocker, heavy=True))
        await asyncio.sleep(0.05)
        with pytest.raises(AnswerBusy):
            await cache.bytes("queued", queued, heavy=True)  # waits behind the blocker, gives up
        blocker.release.set()
        with pytest.raises(AnswerBusy):
            await busy

    asyncio.run(scenario())
    cache.close()
    assert ran == []


def whoami(session: object) -> bytes:
    """Where a heavy answer ran, and what it read of the database."""
    return json.dumps(
        {"pid": os.getpid(), "nice": os.nice(0), "version": data_version(session)}  # type: ignore[arg-type]
    ).encode()


def die(_session: object) -> bytes:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def missing(_session: object) -> bytes:
    raise NotFound("model 'nope' has no trials")


def test_heavy_answers_run_in_a_worker_process_of_lower_priority(db: Database) -> None:
    cache = ResponseCache(db)
    try:
        ran = json.loads(asyncio.run(cache.bytes("who", whoami, heavy=True)))
        assert ran["pid"] != os.getpid()
        assert ran["nice"] > os.nice(0) or os.nice(0) == 19
        with db.session_scope() as s:
            assert ran["version"] == data_version(s)  # the worker opened the same database
        cheap = json.loads(asyncio.run(cache.bytes("who-cheap", whoami)))
        assert cheap["pid"] == os.getpid()  # cheap answers stay on this process's threads
    finally:
        cache.close()


def test_a_heavy_answer_must_pickle(db: Database) -> None:
    cache = ResponseCache(db)
    with pytest.raises(TypeError, match="picklable"):
        asyncio.run(cache.bytes("local", lambda _s: b"x", heavy=True))


def test_a_typed_error_in_a_worker_reaches_the_request(db: Database) -> None:
    cache = ResponseCache(db)
    try:
        with pytest.raises(NotFound, match="nope"):
            asyncio.run(cache.bytes("missing", missing, heavy=True))
    finally:
        cache.close()


def test_a_dead_worker_fails_its_answer_and_the_next_one_gets_a_new_pool(db: Database) -> None:
    cache = ResponseCache(db, heavy_workers=1)
    try:
        with pytest.raises(AnswerBusy, match="stopped"):
            asyncio.run(cache.bytes("die", die, heavy=True))
        ran = json.loads(asyncio.run(cache.bytes("who", whoami, heavy=True)))
        assert ran["pid"] != os.getpid()
    finally:
        cache.close()


def test_a_kept_answer_is_computed_even_when_its_requesters_gave_up(db: Database) -> None:
    # The report: readers with short timeouts must not cancel it again and again.
    cache = ResponseCache(db, deadline=0.2, heavy_workers=1, heavy_processes=False)
    blocker = Blocker()

    async def scenario() -> bytes:
        busy = asyncio.create_task(cache.bytes("blocker", blocker, heavy=True, keep=True))
        await asyncio.sleep(0.05)
        with pytest.raises(AnswerBusy):
            await cache.bytes("report", lambda _s: b"report", heavy=True, keep=True)
        blocker.release.set()
        with pytest.raises(AnswerBusy):
            await busy
        for _ in range(100):
            try:
                return await cache.bytes("report", lambda _s: b"again", heavy=True, keep=True)
            except AnswerBusy:
                await asyncio.sleep(0.05)
        raise AssertionError("never cached")

    assert asyncio.run(scenario()) == b"report"  # the first, kept computation, not a new one
    cache.close()


def bump_version(db: Database) -> None:
    with db.session_scope() as s:
        s.execute(update(DataVersion).where(DataVersion.id == 1).values(
            version=DataVersion.version + 1))  # fmt: skip


def test_a_newer_version_joins_a_computation_that_has_not_started(db: Database) -> None:
    # A sync bumps the version every second while trials run: a page asked at each version must
    # not queue one computation per version behind a busy pool (the soak test's 503s).
    cache = ResponseCache(db, deadline=5, heavy_workers=1, heavy_processes=False)
    blocker = Blocker()
    runs: list[int] = []

    def answer(session: object) -> bytes:
        runs.append(1)
        return str(data_version(session)).encode()  # type: ignore[arg-type]

    async def scenario() -> list[bytes]:
        busy = asyncio.create_task(cache.bytes("blocker", blocker, heavy=True))
        await asyncio.sleep(0.05)
        first = asyncio.create_task(cache.bytes("page", answer, heavy=True))
        await asyncio.sleep(0.05)
        bump_version(db)
        cache.invalidate()
        second = asyncio.create_task(cache.bytes("page", answer, heavy=True))
        await asyncio.sleep(0.05)
        blocker.release.set()
        await busy
        return await asyncio.gather(first, second)

    with db.session_scope() as s:
        start = data_version(s)
    assert asyncio.run(scenario()) == [str(start + 1).encode()] * 2  # read when it started
    assert runs == [1]
    # Labelled with the version it read, so the current version hits it.
    assert asyncio.run(cache.bytes("page", answer, heavy=True)) == str(start + 1).encode()
    assert runs == [1]
    cache.close()


def test_a_running_computation_of_an_older_version_does_not_answer_a_newer_one(
    db: Database,
) -> None:
    cache = ResponseCache(db, deadline=5, heavy_workers=2, heavy_processes=False)
    release = threading.Event()
    started = threading.Event()

    with db.session_scope() as s:
        start = data_version(s)

    runs: list[int] = []

    def answer(session: object) -> bytes:
        version = data_version(session)  # type: ignore[arg-type]
        runs.append(version)
        if version == start:  # the older computation ends last
            started.set()
            release.wait(10)
        return str(version).encode()

    async def scenario() -> tuple[bytes, bytes]:
        old = asyncio.create_task(cache.bytes("page", answer, heavy=True))
        await asyncio.to_thread(started.wait, 5)  # it has read its snapshot
        bump_version(db)
        cache.invalidate()
        newer = await cache.bytes("page", answer, heavy=True)
        release.set()
        return await old, newer

    assert asyncio.run(scenario()) == (str(start).encode(), str(start + 1).encode())
    # The older computation landed after the newer one: the newer answer stays cached.
    assert asyncio.run(cache.bytes("page", answer, heavy=True)) == str(start + 1).encode()
    assert sorted(runs) == [start, start + 1]  # a hit, not a third computation
    cache.close()


def test_kept_answers_have_a_lane_that_open_ended_ones_cannot_fill(db: Database) -> None:
    # Distinct importance filters fill the heavy workers; the report must not wait behind them.
    cache = ResponseCache(db, deadline=0.5, heavy_workers=1, heavy_processes=False)
    blocker = Blocker()

    async def scenario() -> bytes:
        busy = asyncio.create_task(cache.bytes("filter-1", blocker, heavy=True))
        await asyncio.sleep(0.05)
        report = await cache.bytes("report", lambda _s: b"report", heavy=True, keep=True)
        blocker.release.set()
        await busy
        return report

    assert asyncio.run(scenario()) == b"report"
    cache.close()


WORKER_PID = '''
import os


def pid(_session):
    return str(os.getpid()).encode()
'''

KILLED_SERVICE = '''
import asyncio, os, signal, sys
from service.cache import ResponseCache
from storage.db import Database
import workerpid

db = Database(sys.argv[1])
db.migrate()
cache = ResponseCache(db)
print(asyncio.run(cache.bytes("pid", workerpid.pid, heavy=True)).decode(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no shutdown of the pool: as kill -9 of the service
'''


def test_workers_of_a_killed_service_exit(tmp_path: Path) -> None:
    (tmp_path / "workerpid.py").write_text(WORKER_PID)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    out = subprocess.run(
        [sys.executable, "-c", KILLED_SERVICE, f"sqlite:///{tmp_path / 'nsr.sqlite'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == -signal.SIGKILL, out.stderr
    worker = int(out.stdout.split()[0])
    for _ in range(300):  # it checks on its parent every second
        if not Path(f"/proc/{worker}").exists() or _zombie(worker):
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError(f"worker {worker} outlived the service that started it")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True
