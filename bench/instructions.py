"""What authentication costs per tool call, in CPU instructions: a figure that does not drift.

Throughput on a shared 2-core virtual machine swings by ±10 % from one run to the next, which
is as large as the differences worth knowing about. Instruction counts under valgrind's
callgrind are repeatable to a few hundred instructions, so this is the benchmark to check a
change to the hot path with; bench/whoami.py stays the figure under real load.

Method: the same request as bench/whoami.py (one stateless 2026-07-28 `tools/call` of
`whoami`), sent straight to the ASGI app in process, no sockets. For each app, two processes
run under callgrind with the same set-up and warm-up, one then serving N more requests and one
none; the difference divided by N is the cost of one request. The apps:
- auth: `create_app` in dev mode on a fresh SQLite database, with a real access token from the
  whole OAuth flow (tests/support), the way auth-mcp serves a tool call;
- no-auth: the baseline of bench/whoami.py, the SDK's MCPServer with a constant `whoami`.
Both freeze the garbage collector after warm-up, as auth-mcp's lifespan does.

    uv run python bench/instructions.py            # --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `bench` and `tests` are importable

from bench.whoami import CALL_BODY, CALL_HEADERS, RESULTS, baseline_app  # noqa: E402

WARMUP = 150  # requests both processes of a pair serve before their counts start to differ


def _scope(headers: dict[str, str], body: str = CALL_BODY) -> dict:
    raw = [(b"host", b"127.0.0.1:8000"), *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    raw.append((b"content-length", str(len(body)).encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/mcp", "raw_path": b"/mcp", "query_string": b"", "root_path": "", "headers": raw,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}  # fmt: skip


async def _call(app, headers: dict[str, str], body_text: str = CALL_BODY) -> None:
    """One tool call (whoami unless given another `body_text`); fails loudly unless it succeeds."""
    body, delivered, sent = body_text.encode(), False, []

    async def receive() -> dict:
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()  # a disconnect never comes: the response ends the call
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(_scope(headers, body_text), receive, send)
    if sent[0]["status"] != 200 or b'"isError":false' not in sent[1]["body"]:
        raise SystemExit(f"tool call failed: {sent}")


async def _serve(which: str, requests: int) -> None:
    """Inside callgrind: set up `which`, then serve the requests."""

    async def loop(app, headers: dict[str, str]) -> None:
        for _ in range(WARMUP):
            await _call(app, headers)
        gc.collect()
        gc.freeze()
        for _ in range(requests):
            await _call(app, headers)

    if which == "noauth":
        app = baseline_app()
        async with app.router.lifespan_context(app):
            await loop(app, CALL_HEADERS)
        return
    from tests.support.oauth import login
    from tests.support.server import in_process

    with tempfile.TemporaryDirectory(prefix="auth-mcp-instr-") as tmp:
        async with in_process(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", log_level="WARNING") as env:
            _, tokens = await login(env)
            await loop(env.app, {**CALL_HEADERS, "Authorization": f"Bearer {tokens.access_token}"})


def _count(which: str, requests: int, workdir: Path, script: str = __file__) -> int:
    """Instructions of `script --serve which requests` under callgrind (another bench reuses it)."""
    out = workdir / f"callgrind-{which}-{requests}.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, script, "--serve", which, str(requests)]
    # Same hash seed in every process, so dict and set layouts (and their costs) match.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description="instructions per authenticated whoami call, against no auth")
    parser.add_argument("--requests", type=int, default=500, help="counted requests per app (default 500)")
    parser.add_argument("--serve", nargs=2, metavar=("APP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve[0], int(args.serve[1])))
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if not 10 <= args.requests <= 100_000:
        raise SystemExit("--requests must be 10..100000")
    started = time.strftime("%Y%m%d-%H%M%S")
    runs = [(which, n) for which in ("auth", "noauth") for n in (0, args.requests)]
    with tempfile.TemporaryDirectory(prefix="auth-mcp-instr-") as tmp, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        counts = dict(zip(runs, pool.map(lambda run: _count(*run, Path(tmp)), runs), strict=True))
    per_request = {which: (counts[which, args.requests] - counts[which, 0]) / args.requests for which in ("auth", "noauth")}
    overhead = per_request["auth"] - per_request["noauth"]
    ratio = per_request["noauth"] / per_request["auth"]
    print(f"instructions per whoami call: auth {per_request['auth']:,.0f}, no-auth {per_request['noauth']:,.0f}")
    print(f"authentication adds {overhead:,.0f} ({overhead / per_request['noauth']:.1%}); "
          f"in-process throughput ratio {ratio:.3f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"instructions-{started}.json"
    summary = {"started": started, "command": sys.argv, "requests": args.requests, "counts": {f"{w}-{n}": c for (w, n), c in counts.items()},
               "per_request": per_request, "overhead": overhead, "ratio": ratio}  # fmt: skip
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
