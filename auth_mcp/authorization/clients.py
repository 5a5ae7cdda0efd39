"""Registered clients: the SDK's client record with our redirect and scope policy, and the
checks a registration must pass (RFC 7591 §2, with our bounds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.auth.provider import RegistrationError
from mcp.shared.auth import InvalidRedirectUriError, InvalidScopeError, OAuthClientInformationFull
from pydantic import AnyUrl, Field

from auth_mcp.authorization import redirect_uris
from auth_mcp.authorization.client_names import name_problem
from auth_mcp.scopes import OFFLINE_ACCESS, SUPPORTED_SCOPES

# RFC 7591 §2 metadata this server reads; everything else a client sends (jwks, contacts,
# logo_uri, software_statement, ...) is neither stored nor echoed back, so what a stranger can
# make us keep is these few bounded fields (RFC 7591 §3.2.1 lets the server drop or replace values).
KEPT_FIELDS = frozenset(
    {
        "client_id",
        "client_name",
        "redirect_uris",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "scope",
        "client_id_issued_at",
        "client_secret",
        "client_secret_expires_at",
    }
)
_ALLOWED_AUTH_METHODS = frozenset({"none", "client_secret_post", "client_secret_basic"})
_ALLOWED_GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
# Clients add `offline_access` to ask for refresh tokens; we issue them to every client anyway.
IMPLICIT_SCOPES = frozenset({OFFLINE_ACCESS})


class RegisteredClient(OAuthClientInformationFull):
    """A client as the SDK's handlers see it, with this server's policies.

    The registered `scope` is informational: a client may later ask for any scope this server
    offers (scope step-up, MCP basic/authorization), and the person approves it on the consent page.
    """

    # The scopes this server offers (create_app's `scopes`); never stored nor shown.
    offered_scopes: tuple[str, ...] = Field(default=SUPPORTED_SCOPES, exclude=True)
    # OpenID Connect Registration §2: the one algorithm this client signs its assertions with.
    token_endpoint_auth_signing_alg: str | None = None

    def validate_redirect_uri(self, redirect_uri: AnyUrl | None) -> AnyUrl:
        registered = [str(uri) for uri in self.redirect_uris or []]
        if redirect_uri is None:
            # OAuth 2.1 §4.1.1: redirect_uri may be omitted only when exactly one is registered.
            if len(registered) == 1:
                return AnyUrl(registered[0])
            raise InvalidRedirectUriError("redirect_uri is required: the client registered several")
        if redirect_uris.matches(str(redirect_uri), registered) is None:
            raise InvalidRedirectUriError(f"redirect_uri {str(redirect_uri)!r} is not registered for this client")
        return redirect_uri

    def validate_scope(self, requested_scope: str | None) -> list[str] | None:
        if requested_scope is None:
            return None
        requested, unknown = requested_scopes(requested_scope, self.offered_scopes)
        if unknown:
            raise InvalidScopeError(unknown)
        return requested or None


def requested_scopes(scope: str, offered: Sequence[str]) -> tuple[list[str], str | None]:
    """A space-separated scope parameter as a list without repeats or implicit scopes, and a
    sentence naming the scopes this server does not offer (None when all are offered)."""
    requested = list(dict.fromkeys(s for s in scope.split() if s not in IMPLICIT_SCOPES))
    unknown = [s for s in requested if s not in offered]
    if not unknown:
        return requested, None
    return requested, f"unknown scope {', '.join(unknown)}; this server offers {', '.join(offered)}"


def check_registration(info: OAuthClientInformationFull, *, offered_scopes: Sequence[str]) -> OAuthClientInformationFull:
    """Apply our registration policy; returns the record to store (RFC 7591 §3.2.1 lets the
    server replace requested values) or raises the SDK's `RegistrationError`."""
    uris = [str(uri) for uri in info.redirect_uris or []]
    if not uris:
        raise RegistrationError("invalid_redirect_uri", "at least one redirect_uri is required")
    if len(uris) > redirect_uris.MAX_REDIRECT_URIS:
        raise RegistrationError("invalid_redirect_uri", f"at most {redirect_uris.MAX_REDIRECT_URIS} redirect_uris")
    for uri in uris:
        try:
            redirect_uris.check_registrable(uri)
        except redirect_uris.RedirectUriRejected as exc:
            raise RegistrationError("invalid_redirect_uri", str(exc)) from None
    if info.client_name is not None and (problem := name_problem(info.client_name)) is not None:
        raise RegistrationError("invalid_client_metadata", problem)
    if info.token_endpoint_auth_method not in _ALLOWED_AUTH_METHODS:
        raise RegistrationError(
            "invalid_client_metadata",
            f"token_endpoint_auth_method must be one of {', '.join(sorted(_ALLOWED_AUTH_METHODS))}",
        )
    unsupported = set(info.grant_types) - _ALLOWED_GRANT_TYPES
    if unsupported:
        raise RegistrationError(
            "invalid_client_metadata", f"unsupported grant_types {', '.join(sorted(unsupported))}"
        )
    scope = None
    if info.scope:
        requested, unknown = requested_scopes(info.scope, offered_scopes)
        if unknown:
            raise RegistrationError("invalid_client_metadata", unknown)
        scope = " ".join(requested) or None
    dropped = {name: None for name in OAuthClientInformationFull.model_fields if name not in KEPT_FIELDS}
    # OAuth 2.1 has only the code flow (the SDK insists on "code"): that is all we record.
    return info.model_copy(update={**dropped, "scope": scope, "response_types": ["code"]})


def kept_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The fields of client metadata this server uses (KEPT_FIELDS)."""
    return {name: value for name, value in metadata.items() if name in KEPT_FIELDS}
