"""Operator commands: list and delete clients, list grants, revoke a person everywhere, purge.

They run against the same database as the servers and, with PostgreSQL, announce revocations
to the running replicas, which drop the revoked tokens at once. Each returns lines to print.
"""

from __future__ import annotations

from datetime import UTC, datetime

from auth_mcp.app import Services
from auth_mcp.storage.records import Grant


def _when(timestamp: int | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _is(grant: Grant, who: str | None) -> bool:
    """`who` is a GitHub login (case-insensitive) or numeric id; None matches everyone."""
    return who is None or str(grant.github_user_id) == who or grant.github_login.lower() == who.lower()


async def list_clients(services: Services) -> list[str]:
    lines = [f"{'client_id':38}  {'registered':20}  {'first used':20}  name"]
    for record in await services.store.list_clients():
        name = record.info.get("client_name") or ""
        lines.append(f"{record.client_id:38}  {_when(record.created_at):20}  {_when(record.used_at):20}  {name}")
    return lines


async def delete_client(services: Services, client_id: str) -> list[str]:
    """Delete a registration and revoke every grant made through it (also at GitHub)."""
    revoked = 0
    for grant in await services.store.list_grants():
        if grant.client_id == client_id:
            await services.revoker.revoke_grant(grant.grant_id, reason="client deleted by an operator", at_github=True)
            revoked += 1
    existed = await services.store.get_client(client_id) is not None
    await services.store.delete_client(client_id)
    if not existed and not revoked:
        return [f"no client {client_id}"]
    return [f"deleted client {client_id} and revoked {revoked} grant(s)"]


async def list_grants(services: Services, who: str | None) -> list[str]:
    lines = [f"{'grant':10}  {'GitHub user':28}  {'client':38}  {'scopes':28}  {'created':20}  expires"]
    for grant in await services.store.list_grants():
        if _is(grant, who):
            person = f"{grant.github_login} ({grant.github_user_id})"
            lines.append(
                f"{grant.grant_id[:8]:10}  {person:28}  {grant.client_id:38}  {' '.join(grant.scopes):28}  "
                f"{_when(grant.created_at):20}  {_when(grant.expires_at)}"
            )
    return lines


async def revoke_person(services: Services, who: str) -> list[str]:
    """Every grant of this person (login or numeric id), here and at GitHub."""
    grants = [grant for grant in await services.store.list_grants() if _is(grant, who)]
    for grant in grants:
        await services.revoker.revoke_grant(grant.grant_id, reason="revoked by an operator", at_github=True)
    return [f"revoked {len(grants)} grant(s) of {who}"]


async def purge(services: Services) -> list[str]:
    counts = await services.purger.run_once()
    return [f"purged {counts.total} expired row(s): {counts}"]
