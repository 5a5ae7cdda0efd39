"""The gateway's configuration: the TOML file named by `AUTH_MCP_GATEWAY_CONFIG`.

```toml
[upstreams.notes]
url = "https://notes.internal.example/mcp"   # the upstream's streamable-HTTP MCP endpoint
forward = "jwt"                              # or "github-token" (explicit opt-in)
scopes = ["read:user"]                       # MCP scopes a token needs to reach it
ca_file = "internal-ca.pem"                  # optional: trust this CA (path beside this file) for https
```

Each `[upstreams.NAME]` is served at `/mcp/NAME`. Every mistake stops start-up with one sentence
naming the upstream and the key, so the operator knows which line to change.
"""

from __future__ import annotations

import re
import ssl
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from auth_mcp.http.hosts import is_loopback_host
from auth_mcp.scopes import SUPPORTED_SCOPES

# RFC 3986 unreserved characters without "." and "~": a path segment that needs no escaping.
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?")

Forward = Literal["jwt", "github-token"]


class GatewayConfigError(ValueError):
    """The gateway file cannot be served; the message is one sentence naming what to change."""


class Upstream(BaseModel):
    """One `[upstreams.NAME]` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    url: str
    forward: Forward = "jwt"
    scopes: tuple[str, ...] = ("read:user",)
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    # Seconds without a byte from the upstream: before its answer starts, and between the
    # chunks of a stream (an idle SSE stream then ends; clients resume with Last-Event-ID).
    read_timeout: float = Field(default=120.0, gt=0, le=3600)
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Whole JSON bodies only: SSE streams pass through chunk by chunk and are never held whole.
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    max_streams_per_person: int = Field(default=32, ge=1, le=10_000)
    # PEM certificates an https upstream's certificate must chain to instead of the system's
    # trust store (a private CA, e.g. GitHub Enterprise Server's); read and checked at start-up.
    ca_file: str | None = None
    # Per-tool rules, read by the policy (`[[upstreams.NAME.tools]]`); kept as given here.
    tools: tuple[dict[str, Any], ...] = ()

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://host/mcp")
        if parts.username or parts.password:
            raise ValueError("must not carry a user name or password")
        if parts.fragment:
            raise ValueError("must not have a #fragment")
        return value

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [scope for scope in value if scope not in SUPPORTED_SCOPES]
        if unknown:
            raise ValueError(f"names unknown scopes {unknown}; supported: {list(SUPPORTED_SCOPES)}")
        if not value:
            raise ValueError("must name at least one scope")
        return value

    @field_validator("ca_file")
    @classmethod
    def _check_ca_file(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=value)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot be read as PEM certificates ({getattr(exc, 'strerror', None) or exc})") from None
        return value

    @property
    def path(self) -> str:
        """Where clients reach this upstream on auth-mcp."""
        return f"/mcp/{self.name}"


class GatewayConfig(BaseModel):
    """The whole file: upstreams by name, and the `[builtin]` table (policy of the built-in tools)."""

    model_config = ConfigDict(frozen=True)

    upstreams: dict[str, Upstream]
    builtin: dict[str, Any] = Field(default_factory=dict)


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read and check the file at `path`; raises GatewayConfigError with one sentence."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GatewayConfigError(f"AUTH_MCP_GATEWAY_CONFIG: cannot read {path}: {exc.strerror or exc}") from None
    return parse_gateway_config(text, source=str(path))


def parse_gateway_config(text: str, *, source: str) -> GatewayConfig:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GatewayConfigError(f"{source} is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"upstreams", "builtin"})
    if unknown:
        raise GatewayConfigError(f"{source}: unknown top-level table {unknown[0]!r} (expected [upstreams.NAME] or [builtin])")
    builtin = document.get("builtin", {})
    if not isinstance(builtin, dict):
        raise GatewayConfigError(f"{source}: builtin must be a table ([builtin])")
    tables = document.get("upstreams", {})
    # A file may hold only [[builtin.tools]] rules (the policy of the built-in tools at /mcp).
    if not isinstance(tables, dict) or (not tables and not builtin.get("tools")):
        raise GatewayConfigError(
            f'{source} declares no upstream: add a table such as [upstreams.notes] with url = "https://…/mcp"'
        )
    upstreams = {name: _upstream(name, table, source=source) for name, table in tables.items()}
    return GatewayConfig(upstreams=upstreams, builtin=builtin)


def _upstream(name: str, table: Any, *, source: str) -> Upstream:
    where = f"{source}: [upstreams.{name}]"
    if not _SLUG.fullmatch(name):
        raise GatewayConfigError(
            f"{where}: the name must be lower-case letters, digits, '-' or '_' (it becomes the path /mcp/NAME)"
        )
    if not isinstance(table, dict):
        raise GatewayConfigError(f'{where} must be a table with at least url = "https://…/mcp"')
    ca_file = table.get("ca_file")
    if isinstance(ca_file, str) and not Path(ca_file).is_absolute():
        table = {**table, "ca_file": str(Path(source).parent / ca_file)}  # beside the file that names it
    try:
        upstream = Upstream(name=name, **table)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "?"
        if error["type"] == "missing":
            raise GatewayConfigError(f"{where}: {key} is required") from None
        if error["type"] == "extra_forbidden":
            raise GatewayConfigError(f"{where}: unknown key {key!r}") from None
        message = error["msg"].removeprefix("Value error, ")
        raise GatewayConfigError(f"{where}: {key}: {message}") from None
    url = urlsplit(upstream.url)
    if upstream.forward == "github-token" and url.scheme != "https" and not is_loopback_host(url.hostname):
        # The person's GitHub token never crosses a network in clear text.
        raise GatewayConfigError(
            f'{where}: forward = "github-token" needs an https:// url (or a loopback address), got {upstream.url!r}'
        )
    if upstream.ca_file is not None and url.scheme != "https":
        raise GatewayConfigError(f"{where}: ca_file is for https:// urls, and this url is {upstream.url!r}")
    return upstream
