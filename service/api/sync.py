from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from service.deps import WriteAccess
from storage.schemas import SyncReport

router = APIRouter(tags=["sync"])


@router.post("/sync", response_model=SyncReport, dependencies=[WriteAccess])
async def sync_now(request: Request) -> SyncReport:
    """Run one sync pass now (waits for a background pass in progress)."""
    return await asyncio.to_thread(request.app.state.syncer.run_once)


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
