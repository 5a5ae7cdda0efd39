"""The MCP scopes this server offers.

MCP scopes are named after the GitHub scopes the tools need (PRODUCT.md, "Scopes"), and the
server asks GitHub for exactly the scopes a client was granted. A tool that needs a scope not
listed here stops start-up (`create_app`).
"""

from __future__ import annotations

SUPPORTED_SCOPES: tuple[str, ...] = ("read:user", "user:email", "read:org")
DEFAULT_SCOPE = "read:user"
