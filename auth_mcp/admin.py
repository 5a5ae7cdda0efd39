"""Operator commands: list and delete clients, list and revoke grants, revoke a person everywhere, purge,
read the audit trail.

They run against the same database as the servers, without building or starting a server.
A revocation reaches running servers at once: with PostgreSQL through LISTEN/NOTIFY, with
SQLite because the server watches the file for other processes' commits
(storage/notifications.py). Each command returns a `Report`: lines for a person, the same
facts as data for `--json`, and whether it did what was asked (the exit code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from auth_mcp.audit.events import AuditEvent
from auth_mcp.audit.report import cells
from auth_mcp.gateway.config import GatewayConfig
from auth_mcp.gateway.health import UpstreamHealth
from auth_mcp.storage.audit import AuditQuery
from auth_mcp.storage.records import ClientRecord, Grant, PurgeCounts


class AdminStore(Protocol):
    async def list_clients(self) -> list[ClientRecord]: ...
    async def get_client(self, client_id: str) -> ClientRecord | None: ...
    async def delete_client(self, client_id: str) -> list[str]: ...
    async def list_grants(self, *, github_user_id: int | None = None) -> list[Grant]: ...
    async def last_token_issued(self, grant_ids: Sequence[str]) -> dict[str, int]: ...


class GrantRevoker(Protocol):
    async def revoke_grant(self, grant_id: str, *, reason: str, at_github: bool) -> Grant | None: ...


class Sweeper(Protocol):
    """The servers' periodic purge (authorization/expiry.py): expired grants also lose their
    GitHub tokens at GitHub."""

    async def run_once(self) -> PurgeCounts: ...


class AuditLog(Protocol):
    """The audit trail (storage/audit.py)."""

    async def find(self, query: AuditQuery) -> list[AuditEvent]: ...
    async def purge_expired(self) -> int: ...


class NothingCached:
    """The admin process verifies no tokens, so it has none to forget; running servers learn of
    its revocations from the database (storage/notifications.py)."""

    def forget_grant(self, grant_id: str) -> None:
        return None

    def forget_all(self) -> None:
        return None


@dataclass(frozen=True)
class Operator:
    """What the commands act on."""

    store: AdminStore
    revoker: GrantRevoker
    purger: Sweeper
    audit: AuditLog | None = None


@dataclass
class Report:
    lines: list[str]
    data: Any = None
    ok: bool = True
    problems: list[str] = field(default_factory=list)  # printed on stderr when not ok


GRANT_ID_SHOWN = 12  # characters of a grant id in tables; `grants revoke` takes any unique prefix this long
_MIN_PREFIX = 8


def _when(timestamp: int | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M")


def _iso(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns as wide as their widest cell; the last column is not padded."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return [line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)]


def _is(grant: Grant, who: str | None) -> bool:
    """`who` is a GitHub login (case-insensitive) or numeric id; None matches everyone."""
    return who is None or str(grant.github_user_id) == who or grant.github_login.lower() == who.lower()


def _client_name(record: ClientRecord | None, client_id: str, fallback: str | None = None) -> str:
    name = (record.info.get("client_name") if record is not None else None) or fallback
    return name or "(no name)"


async def list_clients(operator: Operator) -> Report:
    clients = await operator.store.list_clients()
    grants = await operator.store.list_grants()
    live: dict[str, int] = {}
    for grant in grants:
        live[grant.client_id] = live.get(grant.client_id, 0) + 1
    rows, data = [], []
    for record in clients:
        name = _client_name(record, record.client_id)
        rows.append([name, record.client_id, _when(record.created_at), _when(record.used_at), str(live.get(record.client_id, 0))])
        data.append(
            {
                "client_id": record.client_id,
                "name": record.info.get("client_name"),
                "redirect_uris": record.info.get("redirect_uris", []),
                "registered_at": _iso(record.created_at),
                "first_used_at": _iso(record.used_at),
                "grants": live.get(record.client_id, 0),
            }
        )
    if not rows:
        return Report(["No clients are registered."], data)
    lines = table(["NAME", "CLIENT ID", "REGISTERED (UTC)", "FIRST USED", "GRANTS"], rows)
    return Report([*lines, "", f"{len(rows)} client(s)"], data)


async def delete_client(operator: Operator, client_id: str) -> Report:
    """Delete a registration and revoke every grant made through it (also at GitHub)."""
    record = await operator.store.get_client(client_id)
    grants = [grant for grant in await operator.store.list_grants() if grant.client_id == client_id]
    if record is None and not grants:
        return Report([], ok=False, problems=[f"No client {client_id!r} is registered; `auth-mcp clients list` shows them."])
    for grant in grants:
        await operator.revoker.revoke_grant(grant.grant_id, reason="client deleted by an operator", at_github=True)
    await operator.store.delete_client(client_id)
    name = _client_name(record, client_id, grants[0].client_name if grants else None)
    data = {"client_id": client_id, "name": name, "revoked_grants": len(grants)}
    return Report([f"Deleted client {name} ({client_id}) and revoked {len(grants)} grant(s) made through it."], data)


async def list_grants(operator: Operator, who: str | None) -> Report:
    grants = [grant for grant in await operator.store.list_grants() if _is(grant, who)]
    last = await operator.store.last_token_issued([grant.grant_id for grant in grants])
    rows, data = [], []
    for grant in grants:
        client = grant.client_name or grant.client_id
        rows.append(
            [
                grant.grant_id[:GRANT_ID_SHOWN],
                f"{grant.github_login} ({grant.github_user_id})",
                client,
                " ".join(grant.scopes),
                _when(grant.created_at),
                _when(last.get(grant.grant_id)),
            ]
        )
        data.append(
            {
                "grant_id": grant.grant_id,
                "github_login": grant.github_login,
                "github_user_id": grant.github_user_id,
                "client_id": grant.client_id,
                "client_name": grant.client_name,
                "scopes": list(grant.scopes),
                "created_at": _iso(grant.created_at),
                "last_token_at": _iso(last.get(grant.grant_id)),
                "expires_at": _iso(grant.expires_at),
            }
        )
    if not rows:
        if who is not None:
            return Report([], data, ok=False, problems=[f"No grants of {who!r}: no one by that GitHub login or id holds one."])
        return Report(["No grants: no one has authorized a client yet."], data)
    lines = table(["GRANT", "PERSON", "CLIENT", "SCOPES", "CREATED (UTC)", "LAST TOKEN"], rows)
    return Report([*lines, "", f"{len(rows)} grant(s); revoke one with `auth-mcp grants revoke GRANT`"], data)


async def revoke_grant(operator: Operator, grant_prefix: str) -> Report:
    """One grant, named by its id or a unique prefix of at least eight characters."""
    if len(grant_prefix) < _MIN_PREFIX:
        return Report([], ok=False, problems=[f"Give at least {_MIN_PREFIX} characters of the grant id (as `grants list` shows)."])
    matches = [grant for grant in await operator.store.list_grants() if grant.grant_id.startswith(grant_prefix)]
    if len(matches) != 1:
        problem = "No grant" if not matches else f"{len(matches)} grants"
        return Report([], ok=False, problems=[f"{problem} with an id starting {grant_prefix!r}; `auth-mcp grants list` shows them."])
    grant = matches[0]
    await operator.revoker.revoke_grant(grant.grant_id, reason="revoked by an operator", at_github=True)
    client = grant.client_name or grant.client_id
    data = {"grant_id": grant.grant_id, "github_login": grant.github_login, "client_id": grant.client_id}
    return Report([f"Revoked grant {grant.grant_id[:GRANT_ID_SHOWN]}: {grant.github_login} through {client}."], data)


async def revoke_person(operator: Operator, who: str) -> Report:
    """Every grant of this person (login or numeric id), here and at GitHub."""
    grants = [grant for grant in await operator.store.list_grants() if _is(grant, who)]
    if not grants:
        return Report([], ok=False, problems=[f"No grants of {who!r}: no one by that GitHub login or id holds one."])
    for grant in grants:
        await operator.revoker.revoke_grant(grant.grant_id, reason="revoked by an operator", at_github=True)
    person = f"{grants[0].github_login} ({grants[0].github_user_id})"
    clients = sorted({grant.client_name or grant.client_id for grant in grants})
    data = {"github_login": grants[0].github_login, "github_user_id": grants[0].github_user_id, "revoked_grants": len(grants)}
    return Report([f"Revoked {len(grants)} grant(s) of {person}: {', '.join(clients)}."], data)


_PURGED = {
    "pending_authorizations": "unfinished sign-in(s)",
    "authorization_codes": "authorization code(s)",
    "access_tokens": "access token(s)",
    "refresh_tokens": "refresh token(s)",
    "grants": "grant(s)",
    "clients": "unused registration(s)",
}


async def purge(operator: Operator) -> Report:
    counts = await operator.purger.run_once()
    data = {name: getattr(counts, name) for name in _PURGED}
    events = await operator.audit.purge_expired() if operator.audit is not None else 0
    data["audit_events"] = events
    if not counts.total and not events:
        return Report(["Nothing to purge: no expired rows."], data)
    parts = [f"{number} {_PURGED[name]}" for name, number in data.items() if number and name in _PURGED]
    if events:
        parts.append(f"{events} audit event(s) past AUTH_MCP_AUDIT_RETENTION_DAYS")
    return Report([f"Purged {counts.total + events} expired row(s): {', '.join(parts)}."], data)


async def list_upstreams(config: GatewayConfig | None, health: UpstreamHealth | None) -> Report:
    """The gateway's upstreams and whether each answers now (as /readyz reports them); not ok
    (exit status 1) when one does not, so scripts can check."""
    if config is None or health is None:
        return Report(["No upstreams: AUTH_MCP_GATEWAY_CONFIG is not set."], [])
    statuses = {status.name: status for status in await health.check()}
    rows, data = [], []
    for upstream in config.upstreams.values():
        status = statuses[upstream.name]
        rows.append([upstream.name, upstream.path, upstream.forward, " ".join(upstream.scopes),
                     ("up, " if status.reachable else "DOWN, ") + status.detail, upstream.url])  # fmt: skip
        data.append({"name": upstream.name, "path": upstream.path, "forward": upstream.forward, "scopes": list(upstream.scopes), **status.as_json()})
    down = [row[0] for row, item in zip(rows, data, strict=True) if not item["reachable"]]
    problems = [f"Upstream {name!r} does not answer." for name in down]
    return Report(table(["upstream", "path", "forward", "scopes", "health", "url"], rows), data, ok=not down, problems=problems)

AUDIT_HEADERS = ("time (UTC)", "GitHub user", "client", "upstream", "tool", "outcome", "ms", "request")


async def audit_trail(operator: Operator, query: AuditQuery) -> Report:
    """The newest tool calls matching `query`."""
    assert operator.audit is not None
    events = await operator.audit.find(query)
    return Report(table(AUDIT_HEADERS, [cells(event) for event in events]), [event.fields() for event in events])
