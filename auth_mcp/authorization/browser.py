"""What we keep in the person's browser between our pages and GitHub's callback.

Two signed, HttpOnly, SameSite=Lax cookies (with the `__Host-` prefix and `Secure` when the
server is on https):
- the CSRF nonce: created on the first consent page view and kept, so the page stays
  submittable however often a browser (pre)loads it; the form's token is an HMAC of this nonce
  and the request id (double submit, bound to both);
- the approved states: set only after the person approved, immediately before the redirect to
  GitHub. The callback requires its `state` to be in this browser's list, so approving in one
  browser and finishing in another (confused deputy, login CSRF) fails.
"""

from __future__ import annotations

import hmac

from itsdangerous import BadSignature
from starlette.requests import Request
from starlette.responses import Response

from auth_mcp.crypto import Keyring
from auth_mcp.tokens import UPSTREAM_STATE_TTL, new_opaque_id

NONCE_MAX_AGE = 24 * 3600
MAX_STATES = 5  # concurrent sign-ins in one browser (several clients logging in at once)


class BrowserBinding:
    def __init__(self, *, keyring: Keyring, secure: bool) -> None:
        self._keyring = keyring
        self._secure = secure
        prefix = "__Host-" if secure else ""
        self.nonce_cookie = f"{prefix}auth_mcp_csrf"
        self.states_cookie = f"{prefix}auth_mcp_states"
        self._nonces = keyring.serializer("browser-nonce")
        self._states = keyring.serializer("browser-states")

    # CSRF ------------------------------------------------------------------------------------

    def nonce(self, request: Request) -> str | None:
        raw = request.cookies.get(self.nonce_cookie)
        if not raw:
            return None
        try:
            value = self._nonces.loads(raw, max_age=NONCE_MAX_AGE)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    def ensure_nonce(self, request: Request) -> tuple[str, bool]:
        """The browser's nonce, and whether it is new (then `set_nonce` on the response)."""
        existing = self.nonce(request)
        return (existing, False) if existing else (new_opaque_id(), True)

    def set_nonce(self, response: Response, nonce: str) -> None:
        self._set(response, self.nonce_cookie, self._nonces.dumps(nonce), NONCE_MAX_AGE)

    def csrf_token(self, nonce: str, request_id: str) -> str:
        return self._keyring.mac("consent-csrf", nonce, request_id)

    def check_csrf(self, request: Request, *, token: str, request_id: str) -> bool:
        nonce = self.nonce(request)
        return nonce is not None and self._keyring.verify_mac(token, "consent-csrf", nonce, request_id)

    # Approved states ---------------------------------------------------------------------------

    def approved_states(self, request: Request) -> list[str]:
        raw = request.cookies.get(self.states_cookie)
        if not raw:
            return []
        try:
            value = self._states.loads(raw, max_age=UPSTREAM_STATE_TTL)
        except BadSignature:
            return []
        return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []

    def has_approved(self, request: Request, state_hash: str) -> bool:
        # Constant-time membership: compare against every entry.
        found = False
        for item in self.approved_states(request):
            found |= hmac.compare_digest(item, state_hash)
        return found

    def add_approved(self, request: Request, response: Response, state_hash: str) -> None:
        states = [*self.approved_states(request), state_hash][-MAX_STATES:]
        self._set(response, self.states_cookie, self._states.dumps(states), UPSTREAM_STATE_TTL)

    def remove_approved(self, request: Request, response: Response, state_hash: str) -> None:
        states = [item for item in self.approved_states(request) if item != state_hash]
        if states:
            self._set(response, self.states_cookie, self._states.dumps(states), UPSTREAM_STATE_TTL)
        else:
            response.delete_cookie(self.states_cookie, path="/", secure=self._secure, httponly=True, samesite="lax")

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self._secure, httponly=True, samesite="lax")
