"""The installed auth-mcp's version (from pyproject.toml), as `--version` and MCP's serverInfo report it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    try:
        return version("auth-mcp")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
