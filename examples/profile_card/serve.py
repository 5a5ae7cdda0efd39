"""The same tools served from code: `python -m profile_card.serve` (with examples/ on PYTHONPATH)."""

from __future__ import annotations

import uvicorn

from auth_mcp import Settings, create_app
from profile_card.tools import TOOLS


def main() -> None:
    settings = Settings()
    uvicorn.run(create_app(settings, tools=TOOLS), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
