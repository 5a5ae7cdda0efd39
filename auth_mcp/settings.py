"""The one settings object: every `AUTH_MCP_*` variable, read from the environment or `.env`.

Everything below this module takes explicit arguments; only `cli.py` and `create_app` see
`Settings`. Validation here fails fast with a sentence a person can act on.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auth_mcp.http.hosts import is_loopback_host
from auth_mcp.storage.database_url import normalise_database_url

Transport = Literal["streamable-http", "sse"]

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Configuration of one auth-mcp process. Documented variable by variable in `.env.example`."""

    model_config = SettingsConfigDict(
        env_prefix="AUTH_MCP_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None

    server_url: str | None = Field(
        default=None, description="Public base URL and issuer; default http://localhost:{port}"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    transport: Transport = "streamable-http"

    github_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"

    database_url: str = "sqlite+aiosqlite:///auth-mcp.db"
    access_token_ttl: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, ge=3600)
    secret_key: SecretStr | None = None

    allowed_users: CommaList = Field(default_factory=list)
    allowed_orgs: CommaList = Field(default_factory=list)

    # Extra Host / Origin values accepted on the MCP endpoints (DNS-rebinding defence) and the
    # browser origins allowed to call /mcp with CORS. The server's own URL is always allowed.
    allowed_hosts: CommaList = Field(default_factory=list)
    allowed_origins: CommaList = Field(default_factory=list)
    # Peers (IPs or CIDRs) whose X-Forwarded-For / X-Forwarded-Proto we believe. Empty: none.
    trusted_proxies: CommaList = Field(default_factory=list)

    # Requests per minute per client IP on /token, /authorize, /consent, /github/callback and
    # /revoke; /register gets a sixtieth (10 a minute by default). 0 turns rate limiting off.
    rate_limit_per_minute: int = Field(default=600, ge=0)

    # Global caps on what strangers can make us store: registrations that never completed a
    # login (kept 24 h at most) and authorization requests in progress (kept 10 min at most).
    # Beyond the cap the oldest unused ones are evicted (metric auth_mcp_storage_evictions_total).
    max_unused_clients: int = Field(default=10_000, ge=1)
    max_pending_authorizations: int = Field(default=10_000, ge=1)

    # Seconds a connection may take to send a request's headers, and its body.
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)

    # Logging out also revokes the person's token at GitHub.
    revoke_github_tokens: bool = True

    # How clients may introduce themselves: dynamic client registration (RFC 7591, /register) and
    # client ID metadata documents (an https client_id, fetched). The metadata says which are on.
    dynamic_registration: bool = True
    client_metadata_documents: bool = True

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text (default) or json: one JSON object per line, for log pipelines. Both carry the request id.
    log_format: Literal["text", "json"] = "text"
    # Database driver logs (SQL statements, connection events) at the log level; off by default,
    # since at DEBUG they are hundreds of lines per login. Bound parameters are never logged.
    log_sql: bool = False

    # Serve Prometheus metrics at /metrics, only to `Authorization: Bearer <metrics_token>`;
    # without a token /metrics is not served.
    metrics: bool = True
    metrics_token: SecretStr | None = None

    # The tools to serve instead of the built-in ones: `package.module:attribute`, a @scoped_tool
    # function or a list of them (include auth_mcp.tools.BUILTIN_TOOLS to keep those).
    tools: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

    # The gateway: a TOML file of upstream MCP servers, each served at /mcp/NAME (README, "Put
    # auth-mcp in front of your MCP server"). None: only the built-in tools, at /mcp.
    gateway_config: Path | None = None

    # The audit trail of tool calls: days its rows are kept (0: forever), and whether (and how
    # many bytes of) the calls' arguments are kept with them. Never by default: they are the
    # callers' data.
    audit_retention_days: int = Field(default=90, ge=0, le=36500)
    audit_arguments: bool = False
    audit_arguments_max_bytes: int = Field(default=2048, ge=64, le=1024 * 1024)

    @field_validator("allowed_users", "allowed_orgs", "allowed_hosts", "allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("AUTH_MCP_METRICS_TOKEN must be at least 16 characters (generate one with: openssl rand -hex 16)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"AUTH_MCP_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR range") from None
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        # An origin is scheme://host[:port] (RFC 6454), exactly as the browser sends it.
        for item in value:
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(
                    f"AUTH_MCP_ALLOWED_ORIGINS: {item!r} is not an origin; write it as the browser sends it, "
                    f"scheme included: http://{item.split('://', 1)[-1]}"
                )
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(
                    f"AUTH_MCP_ALLOWED_ORIGINS: {item!r} is not an origin (no path): {parts.scheme}://{parts.netloc}"
                )
        return [item.rstrip("/") for item in value]

    @field_validator("log_level", "log_format", "transport", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        # postgres://, postgresql+psycopg://, sqlite:///... as providers print them (database_url.py).
        return normalise_database_url(value)

    @field_validator("server_url", "github_url", "github_api_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str | None) -> str | None:
        # RFC 8414 §2: the issuer is compared as a string; one canonical spelling, no trailing slash.
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        # Every problem at once, one per line (settings_problems.py reports them line by line).
        problems = self._problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if bool(self.github_client_id) != bool(self.github_client_secret and self.github_client_secret.get_secret_value()):
            problems.append(
                "AUTH_MCP_GITHUB_CLIENT_ID and AUTH_MCP_GITHUB_CLIENT_SECRET must be set together "
                "(set both for a GitHub OAuth App, or neither for dev mode)"
            )
        problems += self._issuer_problems()
        for name, value in (("AUTH_MCP_GITHUB_URL", self.github_url), ("AUTH_MCP_GITHUB_API_URL", self.github_api_url)):
            if urlsplit(value).scheme not in ("http", "https"):
                problems.append(f"{name} must be an http(s) URL, got {value!r}")
        if not self.is_sqlite and self.secret_key is None:
            problems.append(
                "AUTH_MCP_SECRET_KEY is required with PostgreSQL: every replica must encrypt and sign with the "
                "same key (generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if self.secret_key is not None:
            keys = [k for k in self.secret_key.get_secret_value().split(",") if k.strip()]
            if not keys or any(len(k.strip()) < 32 for k in keys):
                problems.append("AUTH_MCP_SECRET_KEY must hold keys of at least 32 characters (comma-separated to rotate)")
        return problems

    def _issuer_problems(self) -> list[str]:
        url = urlsplit(self.issuer)
        if url.scheme not in ("http", "https") or not url.hostname:
            return [f"AUTH_MCP_SERVER_URL must be an http(s) URL, got {self.issuer!r}"]
        problems: list[str] = []
        if url.path not in ("", "/") or url.query or url.fragment:
            problems.append(
                f"AUTH_MCP_SERVER_URL must be an origin such as https://mcp.example.com, without path, "
                f"query or fragment (got {self.issuer!r}); serve auth-mcp at the root of its own host name"
            )
        loopback = is_loopback_host(url.hostname)
        if url.scheme != "https" and not loopback:
            # OAuth 2.1 §1.5 / RFC 8414 §2: the issuer uses https unless it is on loopback.
            problems.append(
                f"AUTH_MCP_SERVER_URL must use https:// on a non-loopback host (got {self.issuer!r}); "
                "terminate TLS in front of auth-mcp and set the public https URL"
            )
        if self.dev_mode and not loopback:
            problems.append(
                "dev mode (no AUTH_MCP_GITHUB_CLIENT_ID / AUTH_MCP_GITHUB_CLIENT_SECRET) only runs on a loopback "
                f"AUTH_MCP_SERVER_URL, got {self.issuer!r}: its built-in GitHub stand-in lets anyone log in as "
                "anyone. Set the GitHub OAuth App credentials to serve other hosts"
            )
        if self.dev_mode and not is_loopback_host(self.host):
            problems.append(
                f"dev mode refuses to listen on the non-loopback address {self.host!r}: its built-in GitHub "
                "stand-in lets anyone log in as anyone. Set the GitHub OAuth App credentials, or bind 127.0.0.1"
            )
        return problems

    @property
    def issuer_warning(self) -> str | None:
        """A sentence when the issuer cannot be what clients on other machines reach."""
        if self.server_url is None and not self.dev_mode and not is_loopback_host(self.host):
            return (
                f"listening on {self.host} but AUTH_MCP_SERVER_URL is not set, so the issuer that clients must reach "
                f"is {self.issuer}: clients on other machines will fail. Set AUTH_MCP_SERVER_URL to the public URL "
                "(https://...) they use"
            )
        return None

    # Derived values -------------------------------------------------------------------------

    @property
    def dev_mode(self) -> bool:
        """No GitHub credentials: serve the built-in GitHub stand-in instead of github.com."""
        return not self.github_client_id

    @property
    def issuer(self) -> str:
        return self.server_url or f"http://localhost:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for PostgreSQL and in-memory SQLite."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        path = path.split("?", 1)[0]
        if not path or path == ":memory:":
            return None
        return Path(path)

    @property
    def key_file(self) -> Path | None:
        """Where the secret key is generated when AUTH_MCP_SECRET_KEY is not set: beside the SQLite
        database (None for PostgreSQL, which needs the setting, and for in-memory SQLite)."""
        path = self.sqlite_path
        return None if self.secret_key is not None or path is None else path.with_name(path.name + ".key")
