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
Both freeze the garbage collector after warm-up, as auth-mcp's lifespan does. auth-mcp runs at
WARNING, or with `--log-level INFO` (the users' default) with its text log configured as the
server configures it, so that the access and audit lines its log writer makes off the request
path are counted too (every thread of the process is; the lines go to a pipe nobody reads).

    uv run python bench/instructions.py            # --requests 500
    uv run python bench/instructions.py --log-level INFO

`--served` counts the call as a client meets it instead: each server started as bench/whoami.py
starts it (auth-mcp with `python -m auth_mcp`, the baseline under uvicorn), under callgrind, and
driven over HTTP by wrk; counting is switched on from outside (callgrind_control) for a stretch
of wrk's load after a warm-up, and the count is divided by the requests wrk completed in it
(± up to `--connections` requests in flight at either end, of the thousands counted).
That adds what the in-process figure leaves out: the HTTP parser, uvicorn, and auth-mcp's own
protocol layer under it (read deadlines, one write per answer), which the baseline has not.
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


def _scope(headers: dict[str, str], path: str, body: bytes) -> dict:
    raw = [(b"host", b"127.0.0.1:8000"), *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    raw.append((b"content-length", str(len(body)).encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": raw,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}  # fmt: skip


async def _call(app, headers: dict[str, str], *, path: str = "/mcp", body: bytes = CALL_BODY.encode(),
                expect: bytes = b'"isError":false') -> None:  # fmt: skip
    """One POST straight to the ASGI app; exits unless it answers 200 with `expect` in the body."""
    delivered, sent = False, []

    async def receive() -> dict:
        nonlocal delivered
        if delivered:
            await asyncio.Event().wait()  # a disconnect never comes: the response ends the call
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(_scope(headers, path, body), receive, send)
    if sent[0]["status"] != 200 or expect not in sent[1]["body"]:
        raise SystemExit(f"{path} failed: {sent}")


async def _serve(which: str, requests: int, log_level: str = "WARNING") -> None:
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

    if log_level != "WARNING":
        from auth_mcp.http.logs import configure_logging

        configure_logging(log_level, "text")
    with tempfile.TemporaryDirectory(prefix="auth-mcp-instr-") as tmp:
        async with in_process(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", log_level=log_level) as env:
            _, tokens = await login(env)
            await loop(env.app, {**CALL_HEADERS, "Authorization": f"Bearer {tokens.access_token}"})


def _count(
    which: str, requests: int, workdir: Path, script: str = __file__, extra: tuple[str, ...] = (), *, from_marks: bool = False
) -> int:
    """Instructions of `script --serve which requests [extra]` under callgrind. With `from_marks`
    only those between the script's `instrument(True)` and `instrument(False)` are counted, and
    the set-up before runs uninstrumented, several times faster (a busy machine then still
    finishes a count in minutes)."""
    out = workdir / f"callgrind-{which}-{requests}.out"
    marks = ["--instr-atstart=no"] if from_marks else []
    cmd = ["valgrind", "--tool=callgrind", *marks, f"--callgrind-out-file={out}", sys.executable, script, "--serve", which, str(requests), *extra]  # fmt: skip
    # Same hash seed in every process, so dict and set layouts (and their costs) match.
    env = {**os.environ, "PYTHONHASHSEED": "0", MARKS_ENV: "1" if from_marks else ""}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


MARKS_ENV = "AUTH_MCP_BENCH_CALLGRIND_MARKS"


def instrument(on: bool) -> None:
    """Inside a `_count(..., from_marks=True)` run: switch callgrind's counting on or off for this
    process (callgrind_control, through valgrind's gdbserver). Elsewhere, nothing."""
    if os.environ.get(MARKS_ENV):
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], capture_output=True, check=True)


def _count_served(which: str, workdir: Path, args: argparse.Namespace) -> tuple[float, int]:
    """Instructions per request of `which` served over HTTP under callgrind (`--served`), and the
    requests counted."""
    from bench import whoami

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:  # as whoami.py places them: the server on the first core, wrk on the others
        whoami.SERVER_CPUS, whoami.LOAD_CPUS = {cpus[0]}, set(cpus[1:])
    out = workdir / f"callgrind-served-{which}.out"
    wrap = ("valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}")
    (workdir / which).mkdir()
    if which == "auth":
        started = whoami.auth_server(workdir / which, args.log_level, wrap=wrap, start_timeout=SERVED_START_TIMEOUT)
    else:
        started = whoami.baseline_server(workdir / which, wrap=wrap, start_timeout=SERVED_START_TIMEOUT)
    load = argparse.Namespace(threads=1, connections=args.connections)
    with started as base:
        pid = whoami.SERVER_PIDS[base]  # valgrind runs the program in its own process
        headers = dict(whoami.CALL_HEADERS)
        if which == "auth":
            headers["Authorization"] = f"Bearer {whoami.get_token(base)}"
        whoami.check_call(base, headers)
        lua = whoami.write_lua(workdir / f"{which}.lua", headers)
        whoami._wrk(base, lua, load, args.warmup)
        subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=True)
        result = whoami._wrk(base, lua, load, args.duration)
        subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True, check=True)
    if result["failures"] or not result["requests"]:
        raise SystemExit(f"{which}: {result['failures']} failed requests of {result['requests']}")
    found = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)  # written as the server exits
    if not found:
        raise SystemExit(f"{which}: callgrind wrote no totals to {out}")
    return int(found.group(1)) / result["requests"], result["requests"]


SERVED_START_TIMEOUT = 600.0  # seconds: under valgrind, auth-mcp takes a minute or more to start


def main() -> int:
    parser = argparse.ArgumentParser(description="instructions per authenticated whoami call, against no auth")
    parser.add_argument("--requests", type=int, default=500, help="counted requests per app (default 500)")
    parser.add_argument("--log-level", choices=("WARNING", "INFO"), default="WARNING", help="auth-mcp's log level (default WARNING)")
    parser.add_argument("--served", action="store_true", help="count calls served over HTTP by the servers as whoami.py starts them")
    parser.add_argument("--duration", type=int, default=60, help="--served: seconds of counted load (default 60)")
    parser.add_argument("--warmup", type=int, default=15, help="--served: seconds of load before counting (default 15)")
    parser.add_argument("--connections", type=int, default=4, help="--served: wrk's connections (default 4)")
    parser.add_argument("--serve", nargs=2, metavar=("APP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve[0], int(args.serve[1]), args.log_level))
        return 0
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if not 10 <= args.requests <= 100_000:
        raise SystemExit("--requests must be 10..100000")
    if args.served and not (shutil.which("wrk") and 1 <= args.duration <= 3600 and 1 <= args.warmup <= 3600 and 1 <= args.connections <= 64):
        raise SystemExit("--served needs wrk (Debian: apt-get install wrk); --duration/--warmup 1..3600, --connections 1..64")
    started = time.strftime("%Y%m%d-%H%M%S")
    os.environ["PYTHONHASHSEED"] = "0"  # the servers' too: same dict and set layouts run after run
    with tempfile.TemporaryDirectory(prefix="auth-mcp-instr-") as tmp:
        if args.served:
            # One after the other: under valgrind each server needs the core wrk does not use.
            served = {which: _count_served(which, Path(tmp), args) for which in ("auth", "noauth")}
            counts = {f"{which}-served-requests": n for which, (_, n) in served.items()}
            per_request = {which: per for which, (per, _) in served.items()}
        else:
            runs = [(which, n) for which in ("auth", "noauth") for n in (0, args.requests)]
            extra = ("--log-level", args.log_level)
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                found = dict(zip(runs, pool.map(lambda run: _count(*run, Path(tmp), extra=extra), runs), strict=True))
            counts = {f"{w}-{n}": c for (w, n), c in found.items()}
            per_request = {which: (found[which, args.requests] - found[which, 0]) / args.requests for which in ("auth", "noauth")}
    overhead = per_request["auth"] - per_request["noauth"]
    ratio = per_request["noauth"] / per_request["auth"]
    how = "served over HTTP" if args.served else "in process"
    print(f"instructions per whoami call {how}: auth (log level {args.log_level}) {per_request['auth']:,.0f}, no-auth {per_request['noauth']:,.0f}")
    print(f"authentication adds {overhead:,.0f} ({overhead / per_request['noauth']:.1%}); "
          f"throughput ratio by instructions {ratio:.3f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"instructions-{started}.json"
    summary = {"started": started, "command": sys.argv, "served": args.served, "requests": args.requests, "log_level": args.log_level, "counts": counts,
               "per_request": per_request, "overhead": overhead, "ratio": ratio}  # fmt: skip
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
