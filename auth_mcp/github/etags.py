"""ETags of GitHub responses, per token, so repeated reads are answered 304 (free of rate limit)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from auth_mcp.tokens import token_hash


@dataclass(frozen=True, slots=True)
class CachedResponse:
    etag: str
    body: Any
    validated_at: float = 0.0  # when GitHub last sent or confirmed (304) this body
    # The body parsed into models (`GitHubClient.get_model`), by model: a 304 confirms these
    # as much as the body, so they are not parsed again. They belong to this entry, so they are
    # as private to the token as the body is, and a new body (a 200) comes with none.
    parsed: dict[type, Any] = field(default_factory=dict, compare=False, repr=False)


class ETagCache:
    """A bounded LRU of (token, URL) -> (ETag, body).

    Keyed by the token's hash, never the token, and never shared between tokens: a 304 only
    proves the representation is unchanged *for the token that asked*. In-process; each replica
    keeps its own, which costs at most one full response per replica.
    """

    def __init__(self, *, max_entries: int = 2_048) -> None:
        self._entries: OrderedDict[tuple[str, str], CachedResponse] = OrderedDict()
        self._max_entries = max_entries

    @staticmethod
    def _key(token: str, url: str) -> tuple[str, str]:
        return token_hash(token), url

    def get(self, token: str, url: str) -> CachedResponse | None:
        key = self._key(token, url)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, token: str, url: str, entry: CachedResponse) -> None:
        key = self._key(token, url)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def forget_token(self, token: str) -> None:
        digest = token_hash(token)
        for key in [key for key in self._entries if key[0] == digest]:
            del self._entries[key]
