"""The SQLite database holds encrypted GitHub tokens and token hashes: like its key file, it is
created readable by its owner only (it was 0644 before)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.server import in_process


async def test_the_sqlite_file_and_its_journal_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "auth-mcp.db"
    path.parent.mkdir()
    old_umask = os.umask(0o022)
    try:
        async with in_process(database_url=f"sqlite+aiosqlite:///{path}") as env:
            await env.http.get("/readyz")
            for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + ".key")):
                if candidate.exists():
                    assert stat.S_IMODE(candidate.stat().st_mode) == 0o600, candidate
            assert path.exists()
    finally:
        os.umask(old_umask)
