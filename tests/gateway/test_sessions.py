"""Sealed session ids: opened by any replica, only for the person and upstream they were made for."""

from __future__ import annotations

import hashlib

from auth_mcp.gateway.sessions import SessionSeal

KEY, NEXT = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()


def test_a_sealed_id_opens_for_its_person_at_its_upstream_on_another_replica() -> None:
    sealed = SessionSeal(keys_newest_first=[KEY]).seal("upstream-session-1", upstream="notes", person=42)
    assert sealed is not None and "upstream-session-1" not in sealed
    assert all(0x21 <= ord(c) <= 0x7E for c in sealed)  # Mcp-Session-Id: visible ASCII only
    assert SessionSeal(keys_newest_first=[KEY]).open(sealed, upstream="notes", person=42) == "upstream-session-1"


def test_another_person_cannot_open_it() -> None:
    seal = SessionSeal(keys_newest_first=[KEY])
    sealed = seal.seal("s", upstream="notes", person=42)
    assert sealed is not None
    assert seal.open(sealed, upstream="notes", person=43) is None


def test_it_does_not_open_at_another_upstream() -> None:
    seal = SessionSeal(keys_newest_first=[KEY])
    sealed = seal.seal("s", upstream="notes", person=42)
    assert sealed is not None
    assert seal.open(sealed, upstream="tickets", person=42) is None


def test_forged_or_altered_ids_do_not_open() -> None:
    seal = SessionSeal(keys_newest_first=[KEY])
    sealed = seal.seal("s", upstream="notes", person=42)
    assert sealed is not None
    altered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for value in (altered, "s", "", "!!!", "A" * 5000, sealed + "AAAA", sealed[:-4]):
        assert seal.open(value, upstream="notes", person=42) is None


def test_ids_sealed_before_a_key_rotation_still_open() -> None:
    sealed = SessionSeal(keys_newest_first=[KEY]).seal("s", upstream="notes", person=42)
    assert sealed is not None
    assert SessionSeal(keys_newest_first=[NEXT, KEY]).open(sealed, upstream="notes", person=42) == "s"
    assert SessionSeal(keys_newest_first=[NEXT]).open(sealed, upstream="notes", person=42) is None
