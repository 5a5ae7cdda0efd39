"""A PostgreSQL cluster of a test's own (initdb in a temporary directory, its own free port), for
fault tests that stop, restart or break the database. The shared server on 5432 is never touched.

Runs as the `postgres` system user when the tests run as root (initdb refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian: postgresql)")
    return Path(candidates[0]).parent


@dataclass
class ThrowawayPostgres:
    directory: Path
    port: int
    _bin: Path
    _user: str | None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its `postgres` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        """The same database for asyncpg/libpq."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self._bin / "pg_ctl"), action, "-D", str(self.directory / "data"), "-o", options,
            "-l", str(self.directory / "server.log"), "-w", "-t", "30", *extra,
        )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends sessions and stops cleanly; `immediate` is a crash (recovery at the next start)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("restart", "-m", mode)

    def psql(self, sql: str, *, database: str = "postgres") -> None:
        """Run one SQL statement as the superuser (for faults: a read-only switch, revoked functions)."""
        self._run(
            str(self._bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
            "-v", "ON_ERROR_STOP=1", "-c", sql, database,
        )  # fmt: skip


@contextlib.contextmanager
def throwaway_postgres(*, settings: Mapping[str, str] | None = None) -> Iterator[ThrowawayPostgres]:
    """A started cluster, with `settings` added to its postgresql.conf (e.g. TLS); stopped and deleted after."""
    bin_dir = _bin_dir()
    user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="auth-mcp-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    cluster = ThrowawayPostgres(directory=directory, port=free_port(), _bin=bin_dir, _user=user)
    try:
        cluster._run(
            str(bin_dir / "initdb"), "-D", str(directory / "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"
        )
        if settings:
            with (directory / "data" / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
