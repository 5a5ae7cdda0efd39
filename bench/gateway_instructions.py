"""What the gateway costs per forwarded tool call, in CPU instructions: a figure that does not drift.

bench/gateway.py measures throughput, which on a shared 2-core machine swings by more than the
changes worth knowing about. This counts instructions under valgrind's callgrind, the way
bench/instructions.py does (and with its helpers), for the call bench/gateway.py makes with
`--upstream python`: one stateless 2026-07-28 `tools/call` of `echo`.

- gateway: `create_app` in dev mode on a fresh SQLite database with AUTH_MCP_GATEWAY_CONFIG naming
  the upstream as `[upstreams.echo]`, a real access token for `{issuer}/mcp/echo` from the whole
  OAuth flow (tests/support); each request goes to the ASGI app in process, through the server's
  layers, the bearer guard, the policy and audit gate and the proxy, and from there over a real
  loopback connection (upstream_http.py) to the upstream. The upstream is bench/gateway.py's Python SDK
  server in a separate process, outside callgrind: its cost is not counted.
- direct: that same upstream app (the SDK's MCPServer with `echo`, stateless, JSON answers, no
  auth), in process, called the same way at `/mcp`.

Per app, two processes under callgrind with the same set-up and warm-up, then one serving N
requests and one none, counted only from just before those requests to just after them
(`instrument` in bench/instructions.py: the set-up runs uninstrumented, which makes a count take
minutes rather than half an hour on a busy machine); the difference divided by N is one call. Neither figure includes the HTTP server
(uvicorn) in front of the app, which both pay alike per request, nor the kernel's work. On cores
of their own, the gateway keeps pace with the upstream while its figure stays below the
upstream's (the "direct" figure plus the cost of a Python HTTP client per call).

    uv run python bench/gateway_instructions.py            # --requests 300
    uv run python bench/gateway_instructions.py --keep /tmp/cg   # keep callgrind's files for callgrind_annotate
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `bench` and `tests` are importable

import bench.whoami  # noqa: E402
from bench.gateway import EXPECTED, call_body, call_headers, upstream_app  # noqa: E402
from bench.instructions import WARMUP, _call, _count, instrument  # noqa: E402
from bench.whoami import free_port, server  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BODY = json.dumps(call_body("python"), separators=(",", ":")).encode()
HEADERS = call_headers("python", token=None, session=None)


async def _token(env, resource: str) -> str:
    from tests.support.oauth import authorize, exchange, new_client

    client = await new_client(env)
    result, verifier = await authorize(env, client, browser=env.browser(login="alice"), resource=resource)
    response = await exchange(env, client, result["code"], verifier, resource=resource)
    if response.status_code != 200:
        raise SystemExit(f"no token for {resource}: {response.text}")
    return response.json()["access_token"]


async def _serve(which: str, requests: int, upstream_url: str | None) -> None:
    """Inside callgrind: set up `which`, then serve the requests."""

    async def loop(app, path: str, headers: dict[str, str]) -> None:
        for _ in range(WARMUP):
            await _call(app, headers, path=path, body=BODY, expect=EXPECTED.encode())
        gc.collect()
        gc.freeze()
        instrument(True)
        for _ in range(requests):
            await _call(app, headers, path=path, body=BODY, expect=EXPECTED.encode())
        instrument(False)

    if which == "direct":
        app = upstream_app()
        async with app.router.lifespan_context(app):
            await loop(app, "/mcp", HEADERS)
        return
    from tests.support.server import in_process

    with tempfile.TemporaryDirectory(prefix="auth-mcp-gw-instr-") as tmp:
        config = Path(tmp) / "gateway.toml"
        config.write_text(f'[upstreams.echo]\nurl = "{upstream_url}"\n')
        async with in_process(
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", log_level="WARNING", gateway_config=str(config)
        ) as env:
            token = await _token(env, env.issuer + "/mcp/echo")
            await loop(env.app, "/mcp/echo", {**HEADERS, "Authorization": f"Bearer {token}"})


def main() -> int:
    parser = argparse.ArgumentParser(description="instructions per tool call through the gateway, against the upstream alone")
    parser.add_argument("--requests", type=int, default=300, help="counted requests per app (default 300)")
    parser.add_argument("--keep", type=Path, help="a directory to keep callgrind's output files in")
    parser.add_argument(
        "--gateway-only", action="store_true", help="count the gateway only (the upstream's figure does not change)"
    )
    parser.add_argument("--serve", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        which, n, *url = args.serve
        asyncio.run(_serve(which, int(n), url[0] if url else None))
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if not 10 <= args.requests <= 100_000:
        raise SystemExit("--requests must be 10..100000")
    started = time.strftime("%Y%m%d-%H%M%S")
    apps = ("gateway",) if args.gateway_only else ("gateway", "direct")
    runs = [(which, n) for which in apps for n in (0, args.requests)]
    with tempfile.TemporaryDirectory(prefix="auth-mcp-gw-instr-") as tmp:
        workdir = Path(tmp)
        (workdir / "upstream").mkdir()
        port = free_port()
        bench.whoami.START_TIMEOUT = 120.0  # importing the SDK takes long on a busy machine
        cmd = [sys.executable, str(ROOT / "bench" / "gateway.py"), "--serve-upstream", str(port)]
        with server(cmd, dict(os.environ), workdir / "upstream", port) as base:
            upstream_url = base + "/mcp"

            def count(run: tuple[str, int]) -> int:
                which, n = run
                extra = (upstream_url,) if which == "gateway" else ()
                return _count(which, n, workdir, script=__file__, extra=extra, from_marks=True)

            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                counts = dict(zip(runs, pool.map(count, runs), strict=True))
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for out in workdir.glob("callgrind-*.out"):
                shutil.copy(out, args.keep / out.name)
    per_call = {which: (counts[which, args.requests] - counts[which, 0]) / args.requests for which in apps}
    print(f"instructions per echo call: gateway {per_call['gateway']:,.0f}")
    if "direct" in per_call:
        print(f"upstream alone {per_call['direct']:,.0f} (gateway / upstream {per_call['gateway'] / per_call['direct']:.3f})")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"gateway-instructions-{started}.json"
    summary = {"started": started, "command": sys.argv, "requests": args.requests,
               "counts": {f"{w}-{n}": c for (w, n), c in counts.items()}, "per_call": per_call}  # fmt: skip
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
