"""A real, small filesystem (tmpfs) that a test can fill up and free again: a full disk under SQLite.

Mounting needs root (as in CI); the mount is always undone, also when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_CHUNK = b"\0" * 65536


@dataclass
class SmallDisk:
    path: Path

    @property
    def _filler(self) -> Path:
        return self.path / "filler"

    def fill(self) -> None:
        """Take every free byte."""
        # Unbuffered: a buffered file that hit ENOSPC raises again when closed, for what it still holds.
        with self._filler.open("ab", buffering=0) as filler:
            with contextlib.suppress(OSError):
                for _ in range(1_000_000):  # bounded: far more than any test's disk
                    filler.write(_CHUNK)
            with contextlib.suppress(OSError):
                os.fsync(filler.fileno())
        # The 64 KiB chunk that did not fit may have left room for smaller writes: fill it byte-wise.
        with self._filler.open("ab", buffering=0) as filler, contextlib.suppress(OSError):
            for _ in range(65536):
                filler.write(b"\0" * 512)

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(size: str = "4m") -> Iterator[SmallDisk]:
    mountpoint = Path(tempfile.mkdtemp(prefix="auth-mcp-disk-"))
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)], capture_output=True, text=True
    )
    if result.returncode != 0:
        mountpoint.rmdir()
        raise RuntimeError(f"cannot mount a tmpfs for the full-disk test (needs root): {result.stderr.strip()}")
    try:
        yield SmallDisk(mountpoint)
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=False)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
