"""Where client records come from: registrations in the store, and for URL client ids their
metadata documents (cimd.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mcp.shared.auth import OAuthClientInformationFull

from auth_mcp.authorization.cimd import ClientMetadataError, MetadataDocumentClients, is_metadata_document_url
from auth_mcp.authorization.client_names import has_refused_characters
from auth_mcp.authorization.clients import RegisteredClient, check_registration
from auth_mcp.crypto import DecryptionError, Keyring
from auth_mcp.storage.records import ClientRecord
from auth_mcp.storage.store import Store

logger = logging.getLogger(__name__)

MAX_CLIENT_ID_LENGTH = 2048  # the storage column's width (storage/schema.py)


@dataclass(frozen=True, slots=True)
class ClientProblem:
    """Why a client cannot be used, in words for the person. `temporary`: this server is
    busy fetching other documents and the same request may work shortly."""

    message: str
    temporary: bool = False


class ClientDirectory:
    """Where client records come from: registrations in the store, and for URL client ids their
    metadata documents (cimd.py)."""

    def __init__(
        self,
        *,
        store: Store,
        keyring: Keyring,
        documents: MetadataDocumentClients | None,
        offered_scopes: Sequence[str],
        max_unused: int,
    ) -> None:
        self._offered_scopes = tuple(offered_scopes)
        self._max_unused = max_unused
        self._store = store
        self._keyring = keyring
        self._documents = documents

    async def problem(self, client_id: str) -> ClientProblem | None:
        """Why `client_id` cannot be used; None if it can."""
        if self._documents is not None and is_metadata_document_url(client_id) and _storable(client_id):
            try:
                await self._documents.get(client_id)
            except ClientMetadataError as exc:
                return ClientProblem(f"The application's client metadata document cannot be used: {exc}", temporary=exc.busy)
            return None
        if await self.get(client_id) is not None:
            return None
        return ClientProblem("The application is not registered with this server.")

    async def get(self, client_id: str) -> RegisteredClient | None:
        if not _storable(client_id):
            # No such client can exist; and PostgreSQL refuses a NUL in text, so never ask it.
            return None
        if self._documents is not None and is_metadata_document_url(client_id):
            try:
                return await self._documents.get(client_id)
            except ClientMetadataError as exc:
                logger.info("metadata-document client %s refused: %s", client_id, exc)
                return None
        record = await self._store.get_client(client_id)
        if record is None:
            return None
        secret = None
        if record.client_secret_enc is not None:
            try:
                secret = self._keyring.decrypt(record.client_secret_enc)
            except DecryptionError:
                logger.error("client %s has a secret encrypted with a retired key; it must register again", client_id)
                return None
        return RegisteredClient.model_validate(
            {**record.info, "client_id": client_id, "client_secret": secret, "offered_scopes": self._offered_scopes}
        )

    async def register(self, info: OAuthClientInformationFull, *, now: int) -> int:
        """Store a registration; returns how many unused registrations were evicted for it."""
        checked = check_registration(info, offered_scopes=self._offered_scopes)
        # The SDK answers with the very object it handed us (RFC 7591 §3.2.1: "all registered
        # metadata"): make it say what was registered, without the fields we do not keep.
        for name in OAuthClientInformationFull.model_fields:
            if getattr(info, name) != getattr(checked, name):
                setattr(info, name, getattr(checked, name))
        stored = checked.model_dump(mode="json", exclude_none=True, exclude={"client_secret"})
        secret_enc = self._keyring.encrypt(checked.client_secret) if checked.client_secret else None
        record = ClientRecord(client_id=checked.client_id, info=stored, client_secret_enc=secret_enc, created_at=now, used_at=None)
        return await self._store.add_client(record, max_unused=self._max_unused)


def _storable(client_id: str) -> bool:
    return len(client_id) <= MAX_CLIENT_ID_LENGTH and not has_refused_characters(client_id)
