"""Throughput of an authenticated `whoami` call against the SDK's limit: the same call without auth.

Method:
1. Start auth-mcp the way users do, `python -m auth_mcp --port P`, twice, each in a temporary
   directory with a fresh database (SQLite, or with --database postgresql a fresh PostgreSQL
   database), in dev mode (no GitHub credentials: the built-in GitHub stand-in), with
   AUTH_MCP_SERVER_URL=http://127.0.0.1:P: once with its defaults (log level INFO, so one access
   line per request and one audit line per tool call) and once with AUTH_MCP_LOG_LEVEL=WARNING.
2. Get a real access token from each over HTTP: dynamic registration, /authorize with PKCE, our
   consent page and the stand-in's login page (scripted: cookie jar, redirects followed by
   hand), /token.
3. Start the baseline, the strictest limit the SDK allows (this script with --serve-baseline): a
   plain `MCPServer` whose `whoami` returns a constant of auth-mcp's own `WhoAmI` model, served
   with `streamable_http_app(stateless_http=True, json_response=True)` under one uvicorn worker
   with uvloop and httptools, no access log, and its garbage collector frozen after start-up.
4. Check one call on each: HTTP 200 and a result that is not an error. Warm all three up.
5. Interleaved rounds (defaults, WARNING, baseline; defaults, WARNING, baseline; ...) of `wrk`:
   one stateless MCP 2026-07-28 `tools/call` POST to /mcp per request, over N keep-alive
   connections. The wrk script checks every response (status 200 and `"isError":false`).
   Each round's ratios are auth-mcp's throughput over the baseline's in the same round; the
   figure is the median of the per-round ratios.

Each server is one uvicorn worker pinned to the first core; wrk runs pinned to the others.
Output: a table and bench/results/whoami-<database>-<timestamp>.json. Exit status 1 if any
request failed. Targets (issue 14): defaults >= 0.90, WARNING >= 0.95, on SQLite and PostgreSQL.

    uv run python bench/whoami.py --rounds 9                         # SQLite
    uv run python bench/whoami.py --rounds 9 --database postgresql   # PostgreSQL on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from auth_mcp.tools.whoami import WhoAmI  # the baseline answers with auth-mcp's own model
from tests.support.forms import parse_forms
from tests.support.oauth import pkce

RESULTS = Path(__file__).resolve().parent / "results"
REDIRECT_URI = "http://127.0.0.1:9/cb"
# auth-mcp's two configurations: as users run it (the defaults: INFO, access log on) and quiet.
MODES = {"defaults": "INFO", "warning": "WARNING"}
TARGET_RATIO = {"defaults": 0.90, "warning": 0.95}
MAX_HOPS = 20
START_TIMEOUT = 60.0

CALL_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "whoami",
}
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "arguments": {}, "_meta": META}}
CALL_BODY = json.dumps(CALL, separators=(",", ":"))

# The summary every wrk run ends with (this bench and gateway.py): each thread's count of bad
# responses, wrk's socket errors and latency percentiles, as one JSON line.
LUA_SUMMARY = """
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  local e = summary.errors
  io.write(string.format('BENCH {{"requests":%d,"bad":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,'
    .. '"p50_ms":%.3f,"p99_ms":%.3f}}\\n', summary.requests, total, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""
# The request, checked response by response (status 200 and a successful result).
LUA_TEMPLATE = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"isError":false', 1, true) then bad = bad + 1 end
end
""" + LUA_SUMMARY


class BenchError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(
    cmd: list[str], env: dict[str, str], workdir: Path, port: int, pids: list[int] | None = None, start_timeout: float = START_TIMEOUT
) -> Iterator[str]:
    """Run a server subprocess until the block ends; yields its base URL once it answers HTTP
    (and appends its pid to `pids`, for callers that read its CPU time)."""
    base, log = f"http://127.0.0.1:{port}", workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_pin(SERVER_CPUS))
    if pids is not None:
        pids.append(proc.pid)
    SERVER_PIDS[base] = proc.pid
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise BenchError(f"server exited with {proc.returncode}; log:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(base + "/", timeout=1)
                break
            if time.monotonic() > deadline:
                raise BenchError(f"server on port {port} did not start within {start_timeout}s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped afterwards."""
    import asyncio

    import asyncpg

    name = f"auth_mcp_bench_{os.urandom(4).hex()}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


DATABASE_URL: dict[str, str] = {}  # per mode, set in main() for --database postgresql


def auth_server(
    workdir: Path, log_level: str, database_url: str | None = None, wrap: tuple[str, ...] = (), start_timeout: float = START_TIMEOUT
) -> contextlib.AbstractContextManager[str]:
    """auth-mcp as users start it; `wrap` goes before the command (bench/instructions.py: valgrind)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_MCP_")}
    env["AUTH_MCP_DATABASE_URL"] = database_url or f"sqlite+aiosqlite:///{workdir}/bench.db"
    env["AUTH_MCP_SECRET_KEY"] = "bench-" + "k" * 40
    env["AUTH_MCP_SERVER_URL"] = f"http://127.0.0.1:{port}"
    env["AUTH_MCP_LOG_LEVEL"] = log_level
    cmd = [*wrap, sys.executable, "-m", "auth_mcp", "--port", str(port)]
    return server(cmd, env, workdir, port, start_timeout=start_timeout)


def baseline_server(
    workdir: Path, wrap: tuple[str, ...] = (), start_timeout: float = START_TIMEOUT
) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    cmd = [*wrap, sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)]
    return server(cmd, dict(os.environ), workdir, port, start_timeout=start_timeout)


def get_token(base: str, path: str = "/mcp") -> str:
    """The whole OAuth flow over HTTP, as an MCP client plus a person in a browser would do it,
    for the resource at `path` (the built-in endpoint, or a gateway upstream's /mcp/NAME)."""
    resource = base + path
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as http:
        metadata = {"client_name": "bench", "redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"}
        reg = http.post("/register", json=metadata | {"grant_types": ["authorization_code"], "response_types": ["code"]})
        if reg.status_code != 201:
            raise BenchError(f"/register: HTTP {reg.status_code} {reg.text[:300]}")
        client_id = reg.json()["client_id"]
        verifier, challenge = pkce()
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "state": "bench-state",
                  "code_challenge": challenge, "code_challenge_method": "S256", "resource": resource, "scope": "read:user"}  # fmt: skip
        url, method, data = str(http.build_request("GET", "/authorize", params=params).url), "GET", None
        for _ in range(MAX_HOPS):
            if url.startswith(REDIRECT_URI):
                break
            response = http.request(method, url, data=data)
            method, data = "GET", None
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            forms = parse_forms(response.text) if response.status_code == 200 else []
            if not forms:
                raise BenchError(f"stuck at {url}: HTTP {response.status_code} {response.text[:300]}")
            form = forms[0]
            if "csrf" in form.fields:  # our consent page
                data = {**form.fields, "decision": "approve"}
            elif "login" in form.fields:  # the GitHub stand-in's login page
                data = {**form.fields, "login": "bench", "decision": "authorize"}
            else:
                raise BenchError(f"unknown form at {url}")
            url, method = urljoin(url, form.action), form.method.upper()
        else:
            raise BenchError(f"more than {MAX_HOPS} hops without reaching {REDIRECT_URI}")
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        if "code" not in query or query.get("state") != "bench-state":
            raise BenchError(f"authorization failed: {query}")
        token = http.post("/token", data={"grant_type": "authorization_code", "code": query["code"], "client_id": client_id,
                                          "redirect_uri": REDIRECT_URI, "code_verifier": verifier, "resource": resource})  # fmt: skip
        if token.status_code != 200:
            raise BenchError(f"/token: HTTP {token.status_code} {token.text[:300]}")
        return token.json()["access_token"]


def check_call(base: str, headers: dict[str, str]) -> dict:
    """One whoami call; fails loudly unless it is HTTP 200 with a successful result."""
    response = httpx.post(base + "/mcp", content=CALL_BODY, headers=headers, timeout=10)
    result = response.json().get("result") if response.status_code == 200 else None
    if not result or result.get("isError") is not False or '"isError":false' not in response.text:
        raise BenchError(f"whoami at {base}: HTTP {response.status_code} {response.text[:500]}")
    return result["structuredContent"]


def write_lua(path: Path, headers: dict[str, str], body: str = CALL_BODY) -> Path:
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    path.write_text(LUA_TEMPLATE.format(body=body, headers=lines))
    return path


# On a machine with two or more cores, main() puts the servers on the first core and wrk on the
# others, so the load generator does not steal the server's CPU in uneven slices (the largest
# source of noise between runs on a 2-core machine). --no-pin leaves both unset.
SERVER_CPUS: set[int] | None = None
LOAD_CPUS: set[int] | None = None


def _pin(cpus: set[int] | None):
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


SERVER_PIDS: dict[str, int] = {}  # base URL -> the server's process, whose CPU time run_wrk reads
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far, all its threads (proc(5): fields 14 and 15,
    in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def run_wrk(base: str, lua: Path, args: argparse.Namespace, duration: int) -> dict:
    """One wrk run; besides wrk's figures, the server's CPU time per request (µs), which a busy
    machine disturbs far less than throughput: the server does the same work per request whoever
    else wants the core."""
    pid = SERVER_PIDS.get(base)
    cpu_before = cpu_seconds(pid) if pid else 0.0
    result = _wrk(base, lua, args, duration)
    if pid and result["requests"]:
        result["cpu_us_per_request"] = (cpu_seconds(pid) - cpu_before) / result["requests"] * 1e6
    return result


def _wrk(base: str, lua: Path, args: argparse.Namespace, duration: int) -> dict:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(lua)]
    out = subprocess.run([*cmd, base + "/mcp"], capture_output=True, text=True, timeout=duration + 60, check=False,
                         preexec_fn=_pin(LOAD_CPUS))  # fmt: skip
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out.stdout, re.MULTILINE)
    summary = re.search(r"^BENCH (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or not rps or not summary:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    result = {"rps": float(rps.group(1)), **json.loads(summary.group(1))}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    result["non_2xx_3xx"] = int(non2xx.group(1)) if non2xx else 0
    result["failures"] = result["bad"] + sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result


def baseline_app(*, log_level: str = "WARNING"):
    """The no-auth baseline: the SDK's MCPServer with a `whoami` returning a constant WhoAmI,
    served stateless with JSON responses, as auth-mcp serves its tools. It describes itself as
    auth-mcp's server does (name, title, version, website, the tool's title and _meta): the SDK
    copies that description into every answer, and the same server should pay the same for it."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    answer = WhoAmI(login="bench", id=1, client_id="0123456789abcdef0123456789abcdef", client_name="bench",
                    scopes=["read:user"], expires_at=2_000_000_000, expires_at_iso="2033-05-18T03:33:20+00:00")  # fmt: skip
    mcp = MCPServer(
        "auth-mcp",
        title="GitHub through auth-mcp",
        instructions="Tools that act on GitHub as the person who signed in.",
        log_level=log_level,
        version="0.1.0",
        website_url="http://127.0.0.1:8000",
    )

    @mcp.tool(title="Who am I", meta={"io.github.auth-mcp/requiredScopes": ["read:user"]})
    async def whoami() -> WhoAmI:
        """A constant answer."""
        return answer

    # Like auth-mcp: the SDK's Host check off (auth-mcp has its own).
    return mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


def serve_baseline(port: int) -> None:
    """The baseline at the SDK's best: one uvicorn worker with uvloop and httptools, no access
    log, and everything built at start-up moved out of the garbage collector's way (as auth-mcp's
    lifespan does), so that no setting of the baseline flatters the ratio."""
    import contextlib
    import gc
    import logging

    import uvicorn

    logging.basicConfig(level="WARNING")
    app = baseline_app()
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def frozen(app_):
        async with inner(app_):
            gc.collect()
            gc.freeze()
            yield

    app.router.lifespan_context = frozen
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, server_header=False,
                loop="uvloop", http="httptools")  # fmt: skip


def report(rounds: list[dict], args: argparse.Namespace, started: str) -> int:
    runs = [pair[side] for pair in rounds for side in (*MODES, "noauth")]
    failures = sum(run["failures"] for run in runs)
    medians = {mode: statistics.median(pair[f"ratio_{mode}"] for pair in rounds) for mode in MODES}
    print(f"\n{'round':>5} | {'defaults':>8} {'WARNING':>8} {'no-auth':>8} req/s | ratio defaults  WARNING | "
          f"wrk p50/p99 ms: defaults | WARNING | no-auth")  # fmt: skip
    for label, pair in enumerate(rounds, 1):
        d, w, n = pair["defaults"], pair["warning"], pair["noauth"]
        print(f"{label:>5} | {d['rps']:>8.1f} {w['rps']:>8.1f} {n['rps']:>8.1f}       | "
              f"{pair['ratio_defaults']:>14.3f} {pair['ratio_warning']:>8.3f} | "
              f"{d['p50_ms']:5.1f} / {d['p99_ms']:5.1f} | {w['p50_ms']:5.1f} / {w['p99_ms']:5.1f} | "
              f"{n['p50_ms']:5.1f} / {n['p99_ms']:5.1f}")  # fmt: skip
    met = {mode: medians[mode] >= TARGET_RATIO[mode] for mode in MODES}
    cpu = {mode: statistics.median(pair[f"cpu_ratio_{mode}"] for pair in rounds) for mode in MODES}
    per_request = {side: statistics.median(pair[side]["cpu_us_per_request"] for pair in rounds) for side in (*MODES, "noauth")}
    print("server CPU per request (median, µs): " + ", ".join(f"{side} {us:.0f}" for side, us in per_request.items()))
    print("CPU ratios (no-auth CPU per request / auth-mcp's, median): " + ", ".join(f"{m} {r:.3f}" for m, r in cpu.items()))
    for mode, level in MODES.items():
        print(f"median ratio, {mode} (log level {level}) on {args.database}, {len(rounds)} rounds: {medians[mode]:.3f} "
              f"(target >= {TARGET_RATIO[mode]}: {'met' if met[mode] else 'NOT met'})")  # fmt: skip
    print(f"requests {sum(run['requests'] for run in runs)}, failures {failures} (non-200 or error result, socket errors; "
          f"wrk's own non-2xx/3xx count {sum(run['non_2xx_3xx'] for run in runs)})")  # fmt: skip
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    summary = {
        "started": started,
        "command": sys.argv,
        "settings": {k: v for k, v in vars(args).items() if k != "serve_baseline"},
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "wrk": wrk_version,
            "load_average_at_start": LOAD_AT_START,
        },
        "baseline": "MCPServer, stateless JSON, uvloop + httptools, gc.freeze() after start-up, no access log",
        "rounds": rounds,
        "median_ratio": medians,
        "median_cpu_ratio": cpu,
        "median_cpu_us_per_request": per_request,
        "target_ratio": TARGET_RATIO,
        "target_met": met,
        "pinned": {"servers": sorted(SERVER_CPUS) if SERVER_CPUS else None, "wrk": sorted(LOAD_CPUS) if LOAD_CPUS else None},
        "failures": failures,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"whoami-{args.database}-{started}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if failures else 0


LOAD_AT_START: list[float] = []


def main() -> int:
    parser = argparse.ArgumentParser(description="auth-mcp whoami throughput against the SDK's MCPServer without auth")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5; issue 14 asks for 9)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server (default 3)")
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql"], default="sqlite", help="auth-mcp's store (default sqlite)"
    )
    parser.add_argument("--no-pin", action="store_true", help="let the OS place servers and wrk on any core")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    if not (1 <= args.rounds <= 100 and 1 <= args.duration <= 600 and 1 <= args.warmup <= 600):
        raise BenchError("--rounds must be 1..100, --duration and --warmup 1..600 seconds")
    started = time.strftime("%Y%m%d-%H%M%S")
    LOAD_AT_START.extend(os.getloadavg())
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2:
        global SERVER_CPUS, LOAD_CPUS
        SERVER_CPUS, LOAD_CPUS = {cpus[0]}, set(cpus[1:])
    with contextlib.ExitStack() as stack:
        if args.database == "postgresql":
            # One database per auth-mcp server: each starts from an empty schema, as a new install does.
            for mode in MODES:
                DATABASE_URL[mode] = stack.enter_context(postgres_database())
        return run(args, started)


def run(args: argparse.Namespace, started: str) -> int:
    with tempfile.TemporaryDirectory(prefix="auth-mcp-bench-") as tmp, contextlib.ExitStack() as stack:
        tmpdir = Path(tmp)
        servers, lua, headers = {}, {}, {}
        for mode, level in MODES.items():
            (tmpdir / mode).mkdir()
            servers[mode] = stack.enter_context(auth_server(tmpdir / mode, level, DATABASE_URL.get(mode)))
            headers[mode] = {**CALL_HEADERS, "Authorization": f"Bearer {get_token(servers[mode])}"}
            print(f"auth-mcp ({mode}) whoami:", check_call(servers[mode], headers[mode]))
            lua[mode] = write_lua(tmpdir / f"{mode}.lua", headers[mode])
        (tmpdir / "baseline").mkdir()
        servers["noauth"] = stack.enter_context(baseline_server(tmpdir / "baseline"))
        headers["noauth"] = CALL_HEADERS
        print("no-auth whoami:", check_call(servers["noauth"], CALL_HEADERS))
        lua["noauth"] = write_lua(tmpdir / "noauth.lua", CALL_HEADERS)
        for side in (*MODES, "noauth"):
            run_wrk(servers[side], lua[side], args, args.warmup)
        rounds = []
        for i in range(args.rounds):
            pair = {side: run_wrk(servers[side], lua[side], args, args.duration) for side in (*MODES, "noauth")}
            for mode in MODES:
                pair[f"ratio_{mode}"] = pair[mode]["rps"] / pair["noauth"]["rps"]
                pair[f"cpu_ratio_{mode}"] = pair["noauth"]["cpu_us_per_request"] / pair[mode]["cpu_us_per_request"]
            rounds.append(pair)
            print(f"round {i + 1}: defaults {pair['defaults']['rps']:7.1f}, WARNING {pair['warning']['rps']:7.1f}, "
                  f"no-auth {pair['noauth']['rps']:7.1f} req/s; ratios {pair['ratio_defaults']:.3f} / "
                  f"{pair['ratio_warning']:.3f}", flush=True)  # fmt: skip
        for side in (*MODES, "noauth"):  # all still answer correctly after the load
            check_call(servers[side], headers[side])
    return report(rounds, args, started)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"benchmark failed: {exc}")
