"""A throwaway PostgreSQL server with TLS, for the sslmode/sslrootcert tests: a cluster of its own
(throwaway_postgres.py) with a certificate authority made for it; stopped and deleted after."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.throwaway_postgres import throwaway_postgres


@dataclass(frozen=True)
class TlsPostgres:
    port: int
    ca: Path  # the CA that signed the server's certificate (for sslrootcert)
    other_ca: Path  # a CA that did not

    def url(self, query: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres?{query}"


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
    # The server (the machine's postgres account when the tests run as root) reads these.
    directory.chmod(0o755)
    for name in ("ca.crt", "other-ca.crt", "server.crt"):
        (directory / name).chmod(0o644)
    if os.geteuid() == 0:
        shutil.chown(directory / "server.key", "postgres")
    (directory / "server.key").chmod(0o600)


@contextmanager
def tls_postgres() -> Iterator[TlsPostgres]:
    certificates = Path(tempfile.mkdtemp(prefix="auth-mcp-tls-pg-", dir="/tmp"))
    try:
        _certificates(certificates)
        tls = {"ssl": "on", "ssl_cert_file": str(certificates / "server.crt"), "ssl_key_file": str(certificates / "server.key")}
        with throwaway_postgres(settings=tls) as cluster:
            yield TlsPostgres(port=cluster.port, ca=certificates / "ca.crt", other_ca=certificates / "other-ca.crt")
    finally:
        shutil.rmtree(certificates, ignore_errors=True)
