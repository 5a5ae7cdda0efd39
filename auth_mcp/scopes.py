"""The MCP scopes this server offers.

MCP scopes are named after the GitHub scopes the tools need (PRODUCT.md, "Scopes"), and the
server asks GitHub for exactly the scopes a client was granted. A tool that needs a scope not
listed here stops start-up (`create_app`).
"""

from __future__ import annotations

SUPPORTED_SCOPES: tuple[str, ...] = ("read:user", "user:email", "read:org")
DEFAULT_SCOPE = "read:user"

# OpenID Connect Core §11's scope for refresh tokens. Clients (ChatGPT) ask for it when the
# metadata lists it; this server issues a refresh token to every client whether it asks or not,
# so the scope is accepted, advertised, and never stored in a grant or shown on the consent page.
OFFLINE_ACCESS = "offline_access"
