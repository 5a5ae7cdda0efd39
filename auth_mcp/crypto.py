"""Keys: encryption of GitHub tokens at rest, signing of cookies, and where the secret comes from.

One secret (`AUTH_MCP_SECRET_KEY`, or a generated key file) is stretched with HKDF into
independent sub-keys per purpose, so the cookie-signing key never equals the encryption key.
Several comma-separated secrets rotate keys: the first encrypts and signs, all of them decrypt
and verify (see the deployment guide in the README).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import URLSafeTimedSerializer
from pydantic import SecretStr

__all__ = ["DecryptionError", "Keyring", "load_or_create_key_file"]


class DecryptionError(Exception):
    """A stored ciphertext could not be decrypted with any configured key."""


def _derive(secret: str, purpose: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=f"auth-mcp/{purpose}".encode()).derive(
        secret.encode()
    )


class Keyring:
    """Purpose-separated keys derived from the configured secrets (newest first)."""

    def __init__(self, *, secrets_newest_first: Sequence[str]) -> None:
        if not secrets_newest_first:
            raise ValueError("Keyring needs at least one secret")
        self._secrets = [s.strip() for s in secrets_newest_first]
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(s, "encryption"))) for s in self._secrets]
        )
        self._mac_keys = [_derive(s, "mac") for s in self._secrets]

    @classmethod
    def from_setting(cls, value: str) -> Keyring:
        return cls(secrets_newest_first=[k for k in value.split(",") if k.strip()])

    def encrypt(self, plaintext: str) -> str:
        """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) with the newest key."""
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken:
            raise DecryptionError("ciphertext was not made with any configured AUTH_MCP_SECRET_KEY") from None

    def mac(self, purpose: str, *parts: str) -> str:
        """Deterministic HMAC-SHA256 tag (newest key) over `parts`, bound to `purpose`."""
        return _mac(self._mac_keys[0], purpose, parts)

    def verify_mac(self, tag: str, purpose: str, *parts: str) -> bool:
        # Constant-time comparison against every key, so a rotation does not void live values.
        return any(hmac.compare_digest(tag.encode(), _mac(key, purpose, parts).encode()) for key in self._mac_keys)

    def derive_all(self, purpose: str, *, length: int = 32) -> list[bytes]:
        """Key material for `purpose` from every secret, newest first: the first is for new
        values, all of them for reading old ones (the gateway's signing and session keys)."""
        return [_derive(secret, purpose, length) for secret in self._secrets]

    def serializer(self, purpose: str) -> URLSafeTimedSerializer:
        """Signed, timestamped values (cookies). itsdangerous signs with the last key, so reverse."""
        keys = [_derive(s, f"signing/{purpose}") for s in reversed(self._secrets)]
        return URLSafeTimedSerializer(keys, salt=f"auth-mcp/{purpose}")


def _mac(key: bytes, purpose: str, parts: Sequence[str]) -> str:
    message = "\x1f".join((purpose, *parts)).encode()
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode().rstrip("=")


def load_or_create_key_file(path: Path) -> str:
    """Read the generated secret beside the SQLite database, creating it (mode 0600) on first start."""
    if path.exists():
        value = path.read_text().strip()
        if len(value) < 32:
            raise ValueError(f"the key file {path} is damaged (shorter than 32 characters); restore it from backup")
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # Written whole to a private temporary file, then linked into place: link() fails if the key
    # exists, so two processes starting at once agree on one key and nobody reads a partial file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        return load_or_create_key_file(path)
    finally:
        temporary.unlink()
    return value


def resolve_secret(setting: SecretStr | None, *, key_file: Path | None) -> str:
    """The secret key: the configured one, else the one generated once into `key_file`, else
    (in-memory SQLite: nothing persists, so neither need the key) a fresh one."""
    if setting is not None:
        return setting.get_secret_value()
    if key_file is None:
        return secrets.token_urlsafe(32)
    return load_or_create_key_file(key_file)
