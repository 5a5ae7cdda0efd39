"""Tools named in configuration (`AUTH_MCP_TOOLS=package.module:attribute`)."""

from __future__ import annotations

import importlib

from auth_mcp.tools.kit import ToolSpec


class ToolLoadingError(ValueError):
    """The configured tools cannot be loaded; the message says why and what to change."""


def load_tools(reference: str) -> tuple[ToolSpec, ...]:
    """The tools at `package.module:attribute`: one @scoped_tool function, or a list/tuple of them."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ToolLoadingError(
            f"AUTH_MCP_TOOLS={reference}: cannot import {module_name!r} ({exc}); "
            "is the package installed in this environment or on PYTHONPATH?"
        ) from None
    try:
        value = getattr(module, attribute)
    except AttributeError:
        raise ToolLoadingError(f"AUTH_MCP_TOOLS={reference}: the module {module_name!r} has no {attribute!r}") from None
    tools = (value,) if isinstance(value, ToolSpec) else value
    if not isinstance(tools, (list, tuple)) or not tools or not all(isinstance(tool, ToolSpec) for tool in tools):
        raise ToolLoadingError(
            f"AUTH_MCP_TOOLS={reference}: expected a @scoped_tool function or a non-empty list of them, "
            f"found {type(value).__name__}"
        )
    return tuple(tools)
