"""All configuration in one place: environment variables with the ``NSR_`` prefix."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
MIN_TOKEN_CHARS = 16
# The values of .env.example and other obvious stand-ins: a token anyone can guess.
PLACEHOLDER = re.compile(r"change[-_ ]?me|changeme|placeholder|your[-_ ]?token|^(x+|token|secret)$",
                         re.IGNORECASE)  # fmt: skip


def setting_error(exc: ValidationError) -> str:
    """A bad setting as one line naming its variable: ``bad setting port (NSR_PORT): ...``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    return f"bad setting {where} (NSR_{where.upper()}): {msg}"


def data_dir() -> Path:
    """The user's data directory for nsr-search (XDG_DATA_HOME respected)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "nsr-search"


def custom_models_path() -> Path:
    """The registry of custom models `new-search` writes (trials/model_registry.py)."""
    return data_dir() / "custom_models.json"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'nsr.sqlite'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NSR_", extra="ignore")

    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... for a team",
    )
    nni_dir: Path = Field(
        default_factory=lambda: Path(os.path.expanduser("~")) / "nni-experiments",
        description="NNI's experiment directory holding the .experiment registry",
    )
    host: str = "127.0.0.1"
    nni_bind: str = Field(
        default="127.0.0.1",
        max_length=64,
        pattern=r"^[0-9A-Za-z.:-]+$",
        description="the address NNI managers started by the service and the quickstart listen "
        "on (NNI itself listens on every interface); set it to the manager's address for a "
        "remote training service, whose workers connect back to it",
    )
    port: int = Field(default=8765, ge=1, le=65535)
    sync_interval: float = Field(
        default=5.0, ge=0, description="seconds between background syncs; 0 turns it off"
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="when set, every write (POST /api/sync, POST /api/import, "
        f"DELETE /api/experiments/<id>) needs 'Authorization: Bearer <token>'; at least "
        f"{MIN_TOKEN_CHARS} characters, not a placeholder",
    )
    allow_open_bind: bool = Field(
        default=False,
        description="let `serve` listen beyond loopback without NSR_API_TOKEN (anyone who "
        "reaches it may then sync, import and delete); refused otherwise",
    )
    allowed_hosts: str = Field(
        default="",
        description="comma-separated host names the service answers to besides the loopback "
        "ones (127.0.0.1, localhost, ::1) and NSR_HOST: a request whose Host header names "
        "another is refused (DNS rebinding); '*' answers to any",
    )
    max_import_mb: int = Field(default=64, ge=1, description="largest nni.sqlite upload")
    import_seconds: float = Field(
        default=60.0, gt=0, description="longest time one nni.sqlite upload may take to read, "
        "parse and store (past it nothing is stored)",
    )  # fmt: skip
    max_import_trials: int = Field(
        default=100_000, ge=1, description="most trials one upload may hold (what an import "
        "holds in memory grows with them)",
    )  # fmt: skip
    answer_seconds: float = Field(
        default=30.0, gt=0, description="longest a request waits for an uncached answer; then a "
        "503 (the computation goes on and its answer is cached)",
    )  # fmt: skip
    heavy_workers: int = Field(
        default=2, ge=1, le=64, description="threads for the costly answers (importance, the "
        "report, large plot data), apart from the cheap ones and /api/health",
    )  # fmt: skip
    training_service: dict[str, Any] = Field(
        default_factory=lambda: {"platform": "local"},
        description="the NNI trainingService (JSON) of the experiments the service plans and "
        "starts (confirmations, warm starts): local, or remote with this team's machineList; "
        "never the one a stored experiment names",
    )
    ui_refresh_seconds: float = Field(
        default=10.0, ge=0, description="how often an open experiment page reloads its trials "
        "while NNI's manager runs; 0 turns it off",
    )  # fmt: skip

    @field_validator("training_service")
    @classmethod
    def _known_platform(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("platform") not in ("local", "remote"):
            raise ValueError(
                f"platform {str(value.get('platform'))[:40]!r} is not one the service starts: "
                "use local or remote"
            )
        return value

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_no_token(cls, value: object) -> object:
        # `NSR_API_TOKEN=` in an env file means "unset", not "the empty string is the token".
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _no_placeholder_password(cls, value: str) -> str:
        try:
            password = make_url(value).password
        except ArgumentError:
            return value  # the engine names the problem when it is created
        if password is not None and PLACEHOLDER.search(str(password)):
            raise ValueError(
                "the database password is a placeholder (like .env.example's POSTGRES_PASSWORD):"
                " set a real one"
            )
        return value

    @field_validator("api_token")
    @classmethod
    def _real_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if PLACEHOLDER.search(token):
            raise ValueError(
                "NSR_API_TOKEN is a placeholder (like .env.example's): set a random one, e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if len(token.strip()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"NSR_API_TOKEN has {len(token.strip())} characters: at least "
                f"{MIN_TOKEN_CHARS} needed (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @property
    def open_to_network(self) -> bool:
        """Bound beyond loopback without a write token: anyone who can reach it may write."""
        return self.api_token is None and self.host not in LOOPBACK_NAMES

    @property
    def trusted_hosts(self) -> set[str]:
        """Host names (no port) that requests may address; empty set = any."""
        extra = {h.strip().lower().strip("[]") for h in self.allowed_hosts.split(",") if h.strip()}
        if "*" in extra:
            return set()
        hosts = set(LOOPBACK_NAMES) | extra
        if self.host not in WILDCARD_BINDS:
            hosts.add(self.host.lower().strip("[]"))
        return hosts
