"""Sealed session ids: opened by any replica, only for the person and upstream they were made for."""

from __future__ import annotations

import hashlib

import pytest

from auth_mcp.gateway import sessions
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


def test_what_was_remembered_opens_only_for_its_person_at_its_upstream() -> None:
    seal = SessionSeal(keys_newest_first=[KEY])
    sealed = seal.seal("s-1", upstream="notes", person=42)  # remembered as sealed...
    assert seal.open(sealed, upstream="notes", person=42) == "s-1"  # ...and as opened
    assert seal.open(sealed, upstream="notes", person=43) is None
    assert seal.open(sealed, upstream="tickets", person=42) is None
    assert seal.seal("s-1", upstream="notes", person=42) == sealed  # the same id for the same session
    assert seal.seal("s-1", upstream="notes", person=43) != sealed  # never another person's


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MEMO_SIZE", 10)
    seal = SessionSeal(keys_newest_first=[KEY])
    ids = [seal.seal(f"s-{n}", upstream="notes", person=42) for n in range(25)]
    assert len(seal._opened) <= 10 and len(seal._sealed) <= 10
    assert [seal.open(sealed or "", upstream="notes", person=42) for sealed in ids] == [f"s-{n}" for n in range(25)]
