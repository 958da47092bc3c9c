from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request

from service.deps import WRITE_RESPONSES, DbDep, SessionDep, SettingsDep, WriteAccess
from storage import queries
from storage.errors import InvalidValue
from storage.schemas import ImportReport, SyncErrorItem, SyncReport
from storage.sync import import_nni_sqlite

router = APIRouter(tags=["sync"])
IMPORT_TYPES = frozenset({"application/octet-stream", "application/vnd.sqlite3",
                          "application/x-sqlite3"})  # fmt: skip


@router.post(
    "/sync", response_model=SyncReport, dependencies=[WriteAccess], responses=WRITE_RESPONSES
)
async def sync_now(request: Request) -> SyncReport:
    """Run one sync pass now (waits for a background pass in progress)."""
    return await asyncio.to_thread(request.app.state.syncer.run_once)


@router.post(
    "/import",
    response_model=ImportReport,
    dependencies=[WriteAccess],
    responses={**WRITE_RESPONSES, 413: {"description": "larger than NSR_MAX_IMPORT_MB"},
               415: {"description": "Content-Type is not application/octet-stream"},
               422: {"description": "the body is not an NNI experiment database, or breaks a "
                                    "limit (the message names it)"},
               429: {"description": "another import is still running"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)  # fmt: skip
async def import_experiment(request: Request, db: DbDep, settings: SettingsDep) -> ImportReport:
    """Ingest an uploaded ``nni.sqlite`` (``<logDir>/<experiment id>/db/nni.sqlite`` of an
    experiment run elsewhere), e.g. ``curl --data-binary @nni.sqlite -H 'Content-Type:
    application/octet-stream'``. Idempotent like a sync: importing twice changes nothing.
    The file is not trusted: only NNI's three plain tables are read, within NSR_IMPORT_SECONDS
    and row limits; one import runs at a time."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in IMPORT_TYPES:
        # Also what keeps web pages out: they cannot send this type without a CORS preflight.
        raise HTTPException(415, f"Content-Type {ctype or '(none)'!r} is not accepted: send the "
                            f"file as {' or '.join(sorted(IMPORT_TYPES))}")  # fmt: skip
    limit = settings.max_import_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"upload larger than {settings.max_import_mb} MB "
                            "(NSR_MAX_IMPORT_MB)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nsr-import-") as tmp:
        # read_sqlite takes the experiment id from the file, never from this made-up path.
        path = Path(tmp) / "upload" / "db" / "nni.sqlite"
        path.parent.mkdir(parents=True)
        size = 0
        with path.open("wb") as f:
            # Streamed to disk: an upload is never held whole in memory.
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413, f"upload larger than {settings.max_import_mb} MB (NSR_MAX_IMPORT_MB)"
                    )
                f.write(chunk)
        if size == 0:
            raise InvalidValue("empty body: send the nni.sqlite file as the request body")
        lock: asyncio.Lock = request.app.state.import_lock
        try:
            await asyncio.wait_for(lock.acquire(), timeout=settings.import_seconds)
        except TimeoutError:
            raise HTTPException(
                429, "another import is still running: retry later", headers={"Retry-After": "5"}
            ) from None
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(
                request.app.state.importer,
                import_nni_sqlite,
                db,
                path,
                settings.import_seconds,
                settings.max_import_trials,
            )
        finally:
            lock.release()
    request.app.state.cache.invalidate()
    return ImportReport(
        experiment=result.nni_id, inserted=result.inserted, updated=result.updated,
        unchanged=result.unchanged,
    )  # fmt: skip


@router.get("/sync/errors", response_model=list[SyncErrorItem])
def sync_errors(session: SessionDep) -> list[SyncErrorItem]:
    """Experiments whose last sync or import failed, with the reason; the sync went on with the
    others. A later pass that stores the experiment clears its entry."""
    return queries.list_sync_errors(session)


@router.get("/health")
async def health() -> dict[str, str]:  # async: on the event loop, never behind a busy thread
    return {"status": "ok"}
