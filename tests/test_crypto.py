from __future__ import annotations

import stat
from pathlib import Path

import pytest

from auth_mcp.crypto import DecryptionError, Keyring, load_or_create_key_file

KEY_A = "a" * 40
KEY_B = "b" * 40


def test_encryption_round_trips_and_hides_the_plaintext() -> None:
    keyring = Keyring(secrets_newest_first=[KEY_A])
    ciphertext = keyring.encrypt("gho_secret_token")
    assert "gho_secret_token" not in ciphertext
    assert keyring.decrypt(ciphertext) == "gho_secret_token"


def test_a_rotated_key_still_decrypts_what_the_old_key_encrypted() -> None:
    old = Keyring(secrets_newest_first=[KEY_A])
    rotated = Keyring.from_setting(f"{KEY_B},{KEY_A}")
    ciphertext = old.encrypt("value")
    assert rotated.decrypt(ciphertext) == "value"
    # New values are encrypted with the newest key only.
    with pytest.raises(DecryptionError):
        old.decrypt(rotated.encrypt("value"))


def test_another_key_cannot_decrypt() -> None:
    with pytest.raises(DecryptionError):
        Keyring(secrets_newest_first=[KEY_B]).decrypt(Keyring(secrets_newest_first=[KEY_A]).encrypt("x"))


def test_macs_are_bound_to_their_purpose_and_survive_rotation() -> None:
    keyring = Keyring(secrets_newest_first=[KEY_A])
    tag = keyring.mac("csrf", "nonce", "request")
    assert keyring.verify_mac(tag, "csrf", "nonce", "request")
    assert not keyring.verify_mac(tag, "other-purpose", "nonce", "request")
    assert not keyring.verify_mac(tag, "csrf", "nonce", "another-request")
    assert Keyring(secrets_newest_first=[KEY_B, KEY_A]).verify_mac(tag, "csrf", "nonce", "request")


def test_the_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "auth-mcp.db.key"
    first = load_or_create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_or_create_key_file(path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["auth-mcp.db.key"]


def test_a_damaged_key_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_text("short")
    with pytest.raises(ValueError, match="damaged"):
        load_or_create_key_file(path)
