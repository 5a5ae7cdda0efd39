"""Where client records come from: registrations in the store, and for URL client ids their
metadata documents (cimd.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from mcp.shared.auth import OAuthClientInformationFull

from auth_mcp.authorization.cimd import ClientMetadataError, MetadataDocumentClients, is_metadata_document_url
from auth_mcp.authorization.clients import RegisteredClient, check_registration
from auth_mcp.crypto import DecryptionError, Keyring
from auth_mcp.storage.records import ClientRecord
from auth_mcp.storage.store import Store

logger = logging.getLogger(__name__)


class ClientDirectory:
    """Where client records come from: registrations in the store, and for URL client ids their
    metadata documents (cimd.py)."""

    def __init__(
        self, *, store: Store, keyring: Keyring, documents: MetadataDocumentClients | None, offered_scopes: Sequence[str]
    ) -> None:
        self._offered_scopes = tuple(offered_scopes)
        self._store = store
        self._keyring = keyring
        self._documents = documents

    async def problem(self, client_id: str) -> str | None:
        """Why `client_id` cannot be used, in words for the person; None if it can."""
        if self._documents is not None and is_metadata_document_url(client_id):
            try:
                await self._documents.get(client_id)
            except ClientMetadataError as exc:
                return f"The application's client metadata document cannot be used: {exc}"
            return None
        return None if await self.get(client_id) is not None else "The application is not registered with this server."

    async def get(self, client_id: str) -> RegisteredClient | None:
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

    async def register(self, info: OAuthClientInformationFull, *, now: int) -> None:
        info = check_registration(info, offered_scopes=self._offered_scopes)
        stored = info.model_dump(mode="json", exclude_none=True, exclude={"client_secret"})
        secret_enc = self._keyring.encrypt(info.client_secret) if info.client_secret else None
        await self._store.add_client(
            ClientRecord(client_id=info.client_id, info=stored, client_secret_enc=secret_enc, created_at=now, used_at=None)
        )
