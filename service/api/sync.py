from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request

from service.deps import WRITE_RESPONSES, DbDep, SettingsDep, WriteAccess
from storage.errors import InvalidValue
from storage.schemas import ImportReport, SyncReport
from storage.sync import import_nni_sqlite

router = APIRouter(tags=["sync"])


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
               422: {"description": "the body is not an NNI experiment database"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)  # fmt: skip
async def import_experiment(request: Request, db: DbDep, settings: SettingsDep) -> ImportReport:
    """Ingest an uploaded ``nni.sqlite`` (``<logDir>/<experiment id>/db/nni.sqlite`` of an
    experiment run elsewhere), e.g. ``curl --data-binary @nni.sqlite -H 'Content-Type:
    application/octet-stream'``. Idempotent like a sync: importing twice changes nothing."""
    limit = settings.max_import_mb * 1024 * 1024
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
        result = await asyncio.to_thread(import_nni_sqlite, db, path)
    request.app.state.cache.invalidate()
    return ImportReport(
        experiment=result.nni_id, inserted=result.inserted, updated=result.updated,
        unchanged=result.unchanged,
    )  # fmt: skip


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
