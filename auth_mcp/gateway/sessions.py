"""Session ids of session-based upstreams, sealed to the person who opened the session.

A session-based upstream (one that answers `initialize` with `Mcp-Session-Id`) keeps the session;
auth-mcp keeps nothing. The client gets a sealed id instead of the upstream's: the upstream's id,
the upstream's name and the person's GitHub id, encrypted and authenticated with AES-256-GCM under
a key derived from `AUTH_MCP_SECRET_KEY`. On each request the id is opened again:
- any replica opens it (same secrets, no storage), so round-robin balancing just works;
- an id opened by another person, for another upstream, or forged, is refused with 404, as the
  streamable HTTP transport answers an unknown session (the client then starts a new one);
- the upstream's own id never reaches the client, so a client cannot name someone else's session
  even if it learnt that id.
Older secrets still open ids sealed before a rotation.
A session's requests all carry the same sealed id, and its answers the same upstream id: what was
sealed and opened is remembered (MEMO_SIZE ids, forgotten all at once when full), so a session
pays for AES-GCM and JSON once, not on every request. Only what GCM authenticated is remembered,
with the upstream and person it belongs to, and it is checked against them as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_NONCE_BYTES = 12  # NIST SP 800-38D §8.2: 96-bit random nonces
MAX_SEALED_LENGTH = 2048  # longer header values are refused before any decryption
MAX_UPSTREAM_ID_LENGTH = 1024
MEMO_SIZE = 10_000


class SessionSeal:
    """Seals and opens session ids; `keys` are 32-byte AES keys, newest first."""

    def __init__(self, *, keys_newest_first: Sequence[bytes]) -> None:
        if not keys_newest_first:
            raise ValueError("SessionSeal needs at least one key")
        self._ciphers = [AESGCM(key) for key in keys_newest_first]
        self._opened: dict[str, tuple[str, int, str]] = {}  # sealed id -> (upstream, person, upstream's id)
        self._sealed: dict[tuple[str, str, int], str] = {}  # (upstream's id, upstream, person) -> sealed id

    def seal(self, upstream_session_id: str, *, upstream: str, person: int) -> str | None:
        """The id handed to the client; None if the upstream's id is unreasonably long."""
        if len(upstream_session_id) > MAX_UPSTREAM_ID_LENGTH:
            return None
        key = (upstream_session_id, upstream, person)
        sealed = self._sealed.get(key)
        if sealed is None:
            sealed = self._seal(upstream_session_id, upstream, person)
            self._remember(upstream_session_id, upstream, person, sealed)
        return sealed

    def open(self, sealed: str, *, upstream: str, person: int) -> str | None:
        """The upstream's session id, or None unless `person` opened this session at `upstream`."""
        known = self._opened.get(sealed)
        if known is not None:
            return known[2] if known[0] == upstream and known[1] == person else None
        opened = self._open(sealed, upstream, person)
        if opened is not None:
            self._remember(opened, upstream, person, sealed)
        return opened

    def _remember(self, upstream_session_id: str, upstream: str, person: int, sealed: str) -> None:
        if len(self._opened) >= MEMO_SIZE or len(self._sealed) >= MEMO_SIZE:
            self._opened.clear()
            self._sealed.clear()
        self._opened[sealed] = (upstream, person, upstream_session_id)
        self._sealed[upstream_session_id, upstream, person] = sealed

    def _seal(self, upstream_session_id: str, upstream: str, person: int) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps({"s": upstream_session_id, "p": person}, separators=(",", ":")).encode()
        sealed = self._ciphers[0].encrypt(nonce, plaintext, _associated(upstream))
        # base64url: visible ASCII only, as Mcp-Session-Id requires (0x21 to 0x7E).
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode("ascii").rstrip("=")

    def _open(self, sealed: str, upstream: str, person: int) -> str | None:
        if not sealed or len(sealed) > MAX_SEALED_LENGTH:
            return None
        try:
            raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) < 1 + _NONCE_BYTES + 16 or raw[:1] != _VERSION:
            return None
        nonce, ciphertext = raw[1 : 1 + _NONCE_BYTES], raw[1 + _NONCE_BYTES :]
        for cipher in self._ciphers:
            try:
                plaintext = cipher.decrypt(nonce, ciphertext, _associated(upstream))
            except InvalidTag:
                continue
            content = json.loads(plaintext)
            # Authenticated by GCM, so the content is ours; the person must be the caller.
            if content.get("p") != person or not isinstance(content.get("s"), str):
                return None
            return content["s"]
        return None


def _associated(upstream: str) -> bytes:
    # The upstream's name as associated data: an id sealed for one upstream opens at no other.
    return b"auth-mcp/gateway-session/" + upstream.encode()
