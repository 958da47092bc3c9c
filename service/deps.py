"""FastAPI dependencies: the database session and the write token check."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
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
    with db.session_scope() as session:
        yield session


def require_token(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    if settings.api_token is None:
        return
    expected = f"Bearer {settings.api_token.get_secret_value()}"
    if authorization is None or not hmac.compare_digest(authorization, expected):
        raise HTTPException(401, "this action needs the header 'Authorization: Bearer <token>'")


SessionDep = Annotated[Session, Depends(get_session)]
DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CacheDep = Annotated[ResponseCache, Depends(get_cache)]
WriteAccess = Depends(require_token)
