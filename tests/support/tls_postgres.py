"""A throwaway PostgreSQL server with TLS, for the sslmode/sslrootcert tests: its own data
directory, its own loopback port, a certificate authority made for it; stopped and deleted after."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass(frozen=True)
class TlsPostgres:
    port: int
    ca: Path  # the CA that signed the server's certificate (for sslrootcert)
    other_ca: Path  # a CA that did not

    def url(self, query: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres?{query}"


def _as_postgres(*command: str | Path) -> list[str]:
    # PostgreSQL refuses to run as root; the machine's postgres account runs this one.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return [*prefix, *map(str, command)]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(directory: Path) -> None:
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=auth-mcp test {name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=directory)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr",
             cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "san.ext", "-out", "server.crt", cwd=directory)  # fmt: skip


@contextmanager
def tls_postgres() -> Iterator[TlsPostgres]:
    base = Path(tempfile.mkdtemp(prefix="auth-mcp-tls-pg-", dir="/tmp"))
    port = free_port()
    data = base / "data"
    try:
        _certificates(base)
        base.chmod(0o755)
        for name in ("ca.crt", "other-ca.crt", "server.crt"):
            (base / name).chmod(0o644)
        if os.geteuid() == 0:
            shutil.chown(base / "server.key", "postgres")
        (base / "server.key").chmod(0o600)
        shutil.chown(base, "postgres") if os.geteuid() == 0 else None
        subprocess.run(_as_postgres(BIN / "initdb", "-D", data, "-A", "trust", "-U", "postgres"), check=True, capture_output=True, timeout=120)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n"
                f"ssl = on\nssl_cert_file = '{base}/server.crt'\nssl_key_file = '{base}/server.key'\n"
            )
        subprocess.run(_as_postgres(BIN / "pg_ctl", "-D", data, "-l", base / "log", "-w", "start"), check=True, capture_output=True, timeout=120)
        try:
            yield TlsPostgres(port=port, ca=base / "ca.crt", other_ca=base / "other-ca.crt")
        finally:
            subprocess.run(_as_postgres(BIN / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"), capture_output=True, timeout=120)
    finally:
        shutil.rmtree(base, ignore_errors=True)
