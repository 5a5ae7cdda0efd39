"""Throughput of an authenticated `whoami` call against the same MCP server without auth.

Method:
1. Start auth-mcp the way users do, `python -m auth_mcp --port P`, in a temporary directory with
   a fresh SQLite database, in dev mode (no GitHub credentials: the built-in GitHub stand-in),
   with AUTH_MCP_SERVER_URL=http://127.0.0.1:P and AUTH_MCP_LOG_LEVEL=WARNING.
2. Get a real access token over HTTP: dynamic registration, /authorize with PKCE, our consent
   page and the stand-in's login page (scripted: cookie jar, redirects followed by hand), /token.
3. Start the baseline (this script with --serve-baseline): a plain `MCPServer` whose `whoami`
   returns a constant pydantic model with the same fields, served with
   `streamable_http_app(stateless_http=True, json_response=True)` under uvicorn, no auth.
4. Check one call on each: HTTP 200 and a result that is not an error. Warm both up.
5. Interleaved rounds (auth, no-auth, auth, no-auth, ...) of `wrk`: one stateless MCP
   2026-07-28 `tools/call` POST to /mcp per request, over N keep-alive connections. The wrk
   script checks every response (status 200 and `"isError":false` in the body).
6. Both at their default logging, one round each: auth-mcp at INFO (its access log, one line
   per request) against the baseline with uvicorn's access log on, as `MCPServer.run()` has it.

Each server is one uvicorn worker; the servers and wrk share this machine's cores. Output: a
table and bench/results/whoami-<timestamp>.json. Exit status 1 if any request failed.
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
TARGET_RATIO = {"sqlite": 0.90, "postgresql": 0.95}
MAX_HOPS = 20
START_TIMEOUT = 30.0

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

# The request, a per-thread count of bad responses, and one JSON summary line at the end.
LUA_TEMPLATE = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"isError":false', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  local e = summary.errors
  io.write(string.format('BENCH {{"requests":%d,"bad":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,'
    .. '"p50_ms":%.2f,"p99_ms":%.2f}}\\n', summary.requests, total, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


class BenchError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], workdir: Path, port: int, pids: list[int] | None = None) -> Iterator[str]:
    """Run a server subprocess until the block ends; yields its base URL once it answers HTTP
    (and appends its pid to `pids`, for callers that read its CPU time)."""
    base, log = f"http://127.0.0.1:{port}", workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_pin(SERVER_CPUS))
    if pids is not None:
        pids.append(proc.pid)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise BenchError(f"server exited with {proc.returncode}; log:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(base + "/", timeout=1)
                break
            if time.monotonic() > deadline:
                raise BenchError(f"server on port {port} did not start within {START_TIMEOUT}s")
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


DATABASE_URL: dict[str, str] = {}  # set in main() for --database postgresql


def auth_server(workdir: Path, log_level: str) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_MCP_")}
    env["AUTH_MCP_DATABASE_URL"] = DATABASE_URL.get("url", f"sqlite+aiosqlite:///{workdir}/bench.db")
    env["AUTH_MCP_SECRET_KEY"] = "bench-" + "k" * 40
    env["AUTH_MCP_SERVER_URL"] = f"http://127.0.0.1:{port}"
    env["AUTH_MCP_LOG_LEVEL"] = log_level
    return server([sys.executable, "-m", "auth_mcp", "--port", str(port)], env, workdir, port)


def baseline_server(workdir: Path, *, access_log: bool = False) -> contextlib.AbstractContextManager[str]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)]
    if access_log:
        cmd.append("--baseline-access-log")
    return server(cmd, dict(os.environ), workdir, port)


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


def run_wrk(base: str, lua: Path, args: argparse.Namespace, duration: int) -> dict:
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
    served stateless with JSON responses, as auth-mcp serves its tools."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    answer = WhoAmI(login="bench", id=1, client_id="0123456789abcdef0123456789abcdef", client_name="bench",
                    scopes=["read:user"], expires_at=2_000_000_000, expires_at_iso="2033-05-18T03:33:20+00:00")  # fmt: skip
    mcp = MCPServer("baseline", log_level=log_level)

    @mcp.tool(title="Who am I")
    async def whoami() -> WhoAmI:
        """A constant answer."""
        return answer

    # Like auth-mcp: the SDK's Host check off (auth-mcp has its own).
    return mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


def serve_baseline(port: int, access_log: bool) -> None:
    """The baseline under one uvicorn worker, run as cli.serve runs auth-mcp.

    With `access_log`, uvicorn logs every request at INFO, as `MCPServer.run("streamable-http")`
    does by default: the counterpart of auth-mcp's default access log.
    """
    import logging

    import uvicorn

    logging.basicConfig(level="INFO" if access_log else "WARNING")
    uvicorn.run(baseline_app(), host="127.0.0.1", port=port, log_config=None, access_log=access_log, server_header=False)


def report(rounds: list[dict], info: dict | None, args: argparse.Namespace, started: str) -> int:
    runs = [pair[side] for pair in [*rounds, *([info] if info else [])] for side in ("auth", "noauth")]
    failures = sum(run["failures"] for run in runs)
    median_ratio = statistics.median(pair["ratio"] for pair in rounds)
    print(f"\n{'round':>5} | {'auth req/s':>10} | {'no-auth req/s':>13} | ratio | wrk p50/p99 ms: auth | no-auth")
    for label, pair in [*enumerate(rounds, 1), *([("INFO", info)] if info else [])]:
        a, n = pair["auth"], pair["noauth"]
        print(f"{label:>5} | {a['rps']:>10.1f} | {n['rps']:>13.1f} | {pair['ratio']:.3f} | "
              f"{a['p50_ms']:6.1f} / {a['p99_ms']:6.1f} | {n['p50_ms']:6.1f} / {n['p99_ms']:6.1f}")  # fmt: skip
    target = TARGET_RATIO[args.database]
    met = median_ratio >= target
    print(f"median ratio over {len(rounds)} rounds: {median_ratio:.3f} (target >= {target} on {args.database}: {'met' if met else 'NOT met'})")
    print(f"requests {sum(run['requests'] for run in runs)}, failures {failures} (non-200 or error result, socket errors; "
          f"wrk's own non-2xx/3xx count {sum(run['non_2xx_3xx'] for run in runs)})")  # fmt: skip
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    summary = {
        "started": started,
        "command": sys.argv,
        "settings": {k: v for k, v in vars(args).items() if k not in ("serve_baseline", "baseline_access_log")},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "wrk": wrk_version},
        "rounds": rounds,
        "median_ratio": median_ratio,
        "target_ratio": target,
        "pinned": {"servers": sorted(SERVER_CPUS) if SERVER_CPUS else None, "wrk": sorted(LOAD_CPUS) if LOAD_CPUS else None},
        "target_met": met,
        "info_log_level_round": info,
        "failures": failures,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"whoami-{started}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="auth-mcp whoami throughput against an MCPServer without auth")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved auth/no-auth round pairs (default 5)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server (default 3)")
    parser.add_argument("--skip-info-round", action="store_true", help="skip the round at the INFO log level")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite", help="auth-mcp's store (default sqlite)")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place servers and wrk on any core")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-access-log", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(args.serve_baseline, args.baseline_access_log)
        return 0
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    if not (1 <= args.rounds <= 100 and 1 <= args.duration <= 600 and 1 <= args.warmup <= 600):
        raise BenchError("--rounds must be 1..100, --duration and --warmup 1..600 seconds")
    started = time.strftime("%Y%m%d-%H%M%S")
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2:
        global SERVER_CPUS, LOAD_CPUS
        SERVER_CPUS, LOAD_CPUS = {cpus[0]}, set(cpus[1:])
    with contextlib.ExitStack() as stack:
        if args.database == "postgresql":
            DATABASE_URL["url"] = stack.enter_context(postgres_database())
        return run(args, started)


def run(args: argparse.Namespace, started: str) -> int:
    with tempfile.TemporaryDirectory(prefix="auth-mcp-bench-") as tmp:
        tmpdir = Path(tmp)
        for name in ("auth", "baseline", "auth-info", "baseline-info"):
            (tmpdir / name).mkdir()
        with auth_server(tmpdir / "auth", "WARNING") as auth, baseline_server(tmpdir / "baseline") as plain:
            auth_headers = {**CALL_HEADERS, "Authorization": f"Bearer {get_token(auth)}"}
            print("auth whoami:   ", check_call(auth, auth_headers))
            print("no-auth whoami:", check_call(plain, CALL_HEADERS))
            auth_lua = write_lua(tmpdir / "auth.lua", auth_headers)
            plain_lua = write_lua(tmpdir / "noauth.lua", CALL_HEADERS)
            run_wrk(auth, auth_lua, args, args.warmup)
            run_wrk(plain, plain_lua, args, args.warmup)
            rounds = []
            for i in range(args.rounds):
                pair = {"auth": run_wrk(auth, auth_lua, args, args.duration)}
                pair["noauth"] = run_wrk(plain, plain_lua, args, args.duration)
                pair["ratio"] = pair["auth"]["rps"] / pair["noauth"]["rps"]
                rounds.append(pair)
                print(f"round {i + 1}: auth {pair['auth']['rps']:7.1f} req/s, no-auth {pair['noauth']['rps']:7.1f} req/s, "
                      f"ratio {pair['ratio']:.3f}", flush=True)  # fmt: skip
            info = None
            if not args.skip_info_round:
                with auth_server(tmpdir / "auth-info", "INFO") as verbose:
                    verbose_headers = {**CALL_HEADERS, "Authorization": f"Bearer {get_token(verbose)}"}
                    check_call(verbose, verbose_headers)
                    verbose_lua = write_lua(tmpdir / "auth-info.lua", verbose_headers)
                    run_wrk(verbose, verbose_lua, args, args.warmup)
                    info = {"auth": run_wrk(verbose, verbose_lua, args, args.duration)}
                with baseline_server(tmpdir / "baseline-info", access_log=True) as plain_logging:
                    check_call(plain_logging, CALL_HEADERS)
                    run_wrk(plain_logging, plain_lua, args, args.warmup)
                    info["noauth"] = run_wrk(plain_logging, plain_lua, args, args.duration)
                info["ratio"] = info["auth"]["rps"] / info["noauth"]["rps"]
            check_call(auth, auth_headers)  # both still answer correctly after the load
            check_call(plain, CALL_HEADERS)
    return report(rounds, info, args, started)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"benchmark failed: {exc}")
