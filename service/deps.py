"""FastAPI dependencies: the database session and the write token check."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.cache import ResponseCache
from service.settings import Settings
from storage.db import Database


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_cache(request: Request) -> ResponseCache:
    # async: a cache hit must not wait for a worker thread.
    return request.app.state.cache


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    # Routes that take a session only read: one snapshot per request.
    with db.session_scope(snapshot=True) as session:
        yield session


# Declared as a security scheme so /docs shows "Authorize" and the OpenAPI names the writes.
bearer = HTTPBearer(
    auto_error=False,
    description="NSR_API_TOKEN; needed by the endpoints that write when the service has one",
)


def require_token(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> None:
    """Writes (sync, import, delete) need ``Authorization: Bearer <NSR_API_TOKEN>`` when a token
    is configured; without one the service trusts whoever can reach it (127.0.0.1 by default)."""
    if settings.api_token is None:
        return
    if credentials is None:
        raise HTTPException(
            401,
            "this endpoint writes and needs the header 'Authorization: Bearer <token>' "
            "(the token is the service's NSR_API_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Bytes, not str: compare_digest rejects non-ASCII str, and a header may hold any latin-1.
    given = credentials.credentials.encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, settings.api_token.get_secret_value().encode()):
        raise HTTPException(
            401,
            "invalid token for this write: use 'Authorization: Bearer <token>' with the "
            "service's NSR_API_TOKEN",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )


START_NEEDS_TOKEN = (
    "starting NNI from the service runs trials as the service's user, so it needs the write "
    "token even on loopback: set NSR_API_TOKEN on the service and send 'Authorization: Bearer "
    "<token>'; without one, ask for the plan (start=false) and run nnictl create on it yourself"
)


def require_start_token(
    settings: Settings, credentials: HTTPAuthorizationCredentials | None
) -> None:
    """``start=true``: the token is required whether or not the service has one configured
    (a 403 when it has none, a 401 when the request's is missing or wrong)."""
    if settings.api_token is None:
        raise HTTPException(403, START_NEEDS_TOKEN)
    require_token(settings, credentials)


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
SessionDep = Annotated[Session, Depends(get_session)]
DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CacheDep = Annotated[ResponseCache, Depends(get_cache)]
WriteAccess = Depends(require_token)
# For the OpenAPI of every writing route: what a missing or wrong token returns.
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "NSR_API_TOKEN is set and the bearer token is missing or wrong"}
}
