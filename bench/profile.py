"""What auth-mcp adds to `get_user_profile` when GitHub answers 304, in CPU instructions per call.

`get_user_profile` is the tool that calls GitHub, and with ETags GitHub's usual answer to a
repeated read is 304 Not Modified: that is the second hot path after `whoami`. The method is
bench/instructions.py's (its helpers are reused): one stateless 2026-07-28 `tools/call`, sent
straight to the ASGI app in process; per app, two processes under callgrind with the same set-up
and warm-up, one serving N more calls; the difference divided by N is the cost of one call.
- auth: `create_app` in dev mode on a fresh SQLite database, a real access token from the whole
  OAuth flow (tests/support); the tool reaches the built-in GitHub stand-in in process (ASGI),
  the way dev mode runs it.
- no-auth: the SDK's MCPServer without auth, serving a `get_user_profile` that makes the same
  conditional GET (same headers, same stand-in mounted the same way, reached through httpx's
  ASGI transport, a real stand-in token for the same login) and returns the same `GitHubUser`,
  keeping the parsed answer with its ETag: the least a tool can do on a 304.
Both warm up (the first call is GitHub's 200 and fills the ETag cache), check that GitHub counted
only that one call (every later one was a 304, which GitHub does not count), then freeze the
garbage collector, as auth-mcp's lifespan does.

    uv run python bench/profile.py                     # --requests 300; needs valgrind
    uv run python bench/profile.py --wrk               # throughput under wrk, as bench/whoami.py
                                                       # (only on a quiet machine: needs wrk)

The wrk mode starts auth-mcp as bench/whoami.py does (dev mode, SQLite, log level WARNING) and
the baseline under uvicorn, pinned the same way, and reports the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: `bench` and `tests` are importable

import httpx  # noqa: E402

from auth_mcp.github.models import GitHubUser  # noqa: E402  (both sides answer with auth-mcp's model)
from bench import instructions, whoami  # noqa: E402

TOOL = "get_user_profile"
LOGIN = "alice"  # tests.support.oauth.login's person; the baseline signs in to the stand-in as the same one
WRK_LOGIN = "bench"  # whoami.get_token's person, for --wrk
CALL = {**whoami.CALL, "params": {**whoami.CALL["params"], "name": TOOL}}
CALL_BODY = json.dumps(CALL, separators=(",", ":"))
CALL_HEADERS = {**whoami.CALL_HEADERS, "Mcp-Name": TOOL}
BASE = "http://127.0.0.1:8000"  # tests.support.server.IN_PROCESS_URL, the issuer the stand-in lives under


# The baseline ------------------------------------------------------------------------------------


async def _stand_in_token(
    http: httpx.AsyncClient, *, prefix: str, login: str, client_id: str, client_secret: str, callback: str
) -> str:
    """A GitHub token from the stand-in, through its own OAuth web flow (login form, code, exchange)."""
    form = {
        "client_id": client_id,
        "redirect_uri": callback,
        "scope": "read:user",
        "state": "s",
        "login": login,
        "decision": "authorize",
    }
    approved = await http.post(f"{prefix}/login/oauth/authorize", data=form)
    code = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
    exchange = {"client_id": client_id, "client_secret": client_secret, "code": code, "redirect_uri": callback}
    tokens = await http.post(f"{prefix}/login/oauth/access_token", data=exchange, headers={"Accept": "application/json"})
    return tokens.json()["access_token"]


@contextlib.asynccontextmanager
async def baseline_app(*, login: str = LOGIN):
    """The no-auth baseline and its stand-in: (ASGI app, the stand-in's DevGitHub), lifespan entered.

    The stand-in is auth-mcp's, mounted as dev mode mounts it and reached the way dev mode
    reaches it (httpx over the ASGI transport); the tool sends what auth-mcp's GitHub client
    sends (Accept, API version, User-Agent, bearer token, If-None-Match)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.routing import Mount, Router

    from auth_mcp.app.github import DEV_GITHUB_PATH
    from auth_mcp.github.client import API_VERSION, DEFAULT_TIMEOUT, USER_AGENT
    from auth_mcp.github.devserver import DevGitHub, DevGitHubOptions
    from auth_mcp.http.pages import Pages

    callback = BASE + "/github/callback"
    options = DevGitHubOptions(client_id="baseline", client_secret="baseline-secret", callback_url=callback)
    dev = DevGitHub(options=options, signing_key="baseline-" + "k" * 32, pages=Pages(server_name="baseline"))
    stand_in = Router(routes=[Mount(DEV_GITHUB_PATH, app=dev.app)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stand_in), base_url=BASE, timeout=DEFAULT_TIMEOUT) as http:
        token = await _stand_in_token(
            http,
            prefix=DEV_GITHUB_PATH,
            login=login,
            client_id=options.client_id,
            client_secret=options.client_secret,
            callback=callback,
        )
        url = BASE + DEV_GITHUB_PATH + "/api/v3/user"
        headers = {"User-Agent": USER_AGENT, "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "Authorization": f"Bearer {token}"}  # fmt: skip
        cached: list[tuple[str, GitHubUser]] = []  # (ETag, the answer it stands for)

        mcp = MCPServer("baseline", log_level="WARNING")

        @mcp.tool(title="GitHub profile")
        async def get_user_profile() -> GitHubUser:
            """GET /user, conditional on the ETag of the last answer."""
            conditional = {**headers, "If-None-Match": cached[0][0]} if cached else headers
            response = await http.get(url, headers=conditional)
            if response.status_code == 304 and cached:
                return cached[0][1]
            response.raise_for_status()
            user = GitHubUser.model_validate_json(response.content)
            cached[:] = [(response.headers["etag"], user)]
            return user

        app = mcp.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        async with app.router.lifespan_context(app):
            yield app, dev


# Instruction counts ------------------------------------------------------------------------------


async def _serve(which: str, requests: int) -> None:
    """Inside callgrind: set up `which`, warm up (one 200, then 304s), check, then serve the requests."""

    async def loop(app, headers: dict[str, str], dev) -> None:
        for _ in range(instructions.WARMUP):
            await instructions._call(app, headers, body=CALL_BODY.encode())
        if dev.rate_limit_used(LOGIN) != 1:  # GitHub counts its 200s, not its 304s
            raise SystemExit(f"{which}: the stand-in counted {dev.rate_limit_used(LOGIN)} full answers, not 1")
        gc.collect()
        gc.freeze()
        for _ in range(requests):
            await instructions._call(app, headers, body=CALL_BODY.encode())
        if dev.rate_limit_used(LOGIN) != 1:
            raise SystemExit(f"{which}: not every counted call was a 304")

    if which == "noauth":
        async with baseline_app() as (app, dev):
            await loop(app, CALL_HEADERS, dev)
        return
    from tests.support.oauth import login
    from tests.support.server import in_process

    with tempfile.TemporaryDirectory(prefix="auth-mcp-profile-") as tmp:
        async with in_process(database_url=f"sqlite+aiosqlite:///{tmp}/bench.db", log_level="WARNING") as env:
            _, tokens = await login(env, login=LOGIN)
            headers = {**CALL_HEADERS, "Authorization": f"Bearer {tokens.access_token}"}
            await loop(env.app, headers, env.services.dev_github)


def count_instructions(args: argparse.Namespace, started: str) -> int:
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if not 10 <= args.requests <= 100_000:
        raise SystemExit("--requests must be 10..100000")
    runs = [(which, n) for which in ("auth", "noauth") for n in (0, args.requests)]
    with tempfile.TemporaryDirectory(prefix="auth-mcp-profile-") as tmp, ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        counts = dict(zip(runs, pool.map(lambda run: instructions._count(*run, Path(tmp), __file__), runs), strict=True))
    per_call = {which: (counts[which, args.requests] - counts[which, 0]) / args.requests for which in ("auth", "noauth")}
    overhead = per_call["auth"] - per_call["noauth"]
    ratio = per_call["noauth"] / per_call["auth"]
    print(f"instructions per {TOOL} call answered by a 304: auth {per_call['auth']:,.0f}, no-auth {per_call['noauth']:,.0f}")
    print(f"auth-mcp adds {overhead:,.0f} ({overhead / per_call['noauth']:.1%}); in-process throughput ratio {ratio:.3f}")
    summary = {"started": started, "command": sys.argv, "requests": args.requests, "counts": {f"{w}-{n}": c for (w, n), c in counts.items()},
               "per_call": per_call, "overhead": overhead, "ratio": ratio}  # fmt: skip
    return _write(f"profile-instructions-{started}.json", summary)


# Throughput --------------------------------------------------------------------------------------


def serve_baseline(port: int) -> None:
    """The baseline under one uvicorn worker, no access log, as bench/whoami.py serves its own."""
    import logging

    import uvicorn

    logging.basicConfig(level="WARNING")

    async def main() -> None:
        async with baseline_app(login=WRK_LOGIN) as (app, _dev):
            # baseline_app() runs the lifespan itself (the stand-in sign-in needs it first).
            config = uvicorn.Config(
                app, host="127.0.0.1", port=port, log_config=None, access_log=False, server_header=False, lifespan="off"
            )
            await uvicorn.Server(config).serve()

    asyncio.run(main())


def baseline_server(workdir: Path) -> contextlib.AbstractContextManager[str]:
    port = whoami.free_port()
    return whoami.server(
        [sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(port)], dict(os.environ), workdir, port
    )


def check_call(base: str, headers: dict[str, str]) -> None:
    """One call; fails loudly unless it is HTTP 200 with the profile of the person who signed in."""
    response = httpx.post(base + "/mcp", content=CALL_BODY, headers=headers, timeout=10)
    result = response.json().get("result") if response.status_code == 200 else None
    if not result or result.get("isError") is not False or result["structuredContent"].get("login") != WRK_LOGIN:
        raise whoami.BenchError(f"{TOOL} at {base}: HTTP {response.status_code} {response.text[:500]}")


def throughput(args: argparse.Namespace, started: str) -> int:
    if not shutil.which("wrk"):
        raise whoami.BenchError("wrk is not installed (Debian: apt-get install wrk)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        whoami.SERVER_CPUS, whoami.LOAD_CPUS = {cpus[0]}, set(cpus[1:])
    load = os.getloadavg()[0]
    whoami.START_TIMEOUT = 120.0  # the baseline signs in to its stand-in before it listens
    with tempfile.TemporaryDirectory(prefix="auth-mcp-profile-") as tmp:
        tmpdir = Path(tmp)
        for name in ("auth", "baseline"):
            (tmpdir / name).mkdir()
        with whoami.auth_server(tmpdir / "auth", "WARNING") as auth, baseline_server(tmpdir / "baseline") as plain:
            auth_headers = {**CALL_HEADERS, "Authorization": f"Bearer {whoami.get_token(auth)}"}
            check_call(auth, auth_headers)
            check_call(plain, CALL_HEADERS)
            auth_lua = whoami.write_lua(tmpdir / "auth.lua", auth_headers, CALL_BODY)
            plain_lua = whoami.write_lua(tmpdir / "noauth.lua", CALL_HEADERS, CALL_BODY)
            whoami.run_wrk(auth, auth_lua, args, args.warmup)
            whoami.run_wrk(plain, plain_lua, args, args.warmup)
            rounds = []
            for i in range(args.rounds):
                pair = {"auth": whoami.run_wrk(auth, auth_lua, args, args.duration)}
                pair["noauth"] = whoami.run_wrk(plain, plain_lua, args, args.duration)
                pair["ratio"] = pair["auth"]["rps"] / pair["noauth"]["rps"]
                rounds.append(pair)
                print(f"round {i + 1}: auth {pair['auth']['rps']:7.1f} req/s, no-auth {pair['noauth']['rps']:7.1f} req/s, "
                      f"ratio {pair['ratio']:.3f}", flush=True)  # fmt: skip
            check_call(auth, auth_headers)
            check_call(plain, CALL_HEADERS)
    failures = sum(pair[side]["failures"] for pair in rounds for side in ("auth", "noauth"))
    median = statistics.median(pair["ratio"] for pair in rounds)
    print(f"median ratio over {len(rounds)} rounds: {median:.3f}; failures {failures}; load average before the run {load:.2f}")
    summary = {"started": started, "command": sys.argv, "load_average_before": load, "rounds": rounds, "median_ratio": median,
               "failures": failures}  # fmt: skip
    _write(f"profile-wrk-{started}.json", summary)
    return 1 if failures else 0


def _write(name: str, summary: dict) -> int:
    whoami.RESULTS.mkdir(exist_ok=True)
    out = whoami.RESULTS / name
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=f"auth-mcp's {TOOL} answered by a 304, against the same tool without auth")
    parser.add_argument("--requests", type=int, default=300, help="counted calls per app under callgrind (default 300)")
    parser.add_argument("--wrk", action="store_true", help="measure throughput under wrk instead (a quiet machine only)")
    parser.add_argument("--rounds", type=int, default=5, help="--wrk: interleaved auth/no-auth round pairs (default 5)")
    parser.add_argument("--duration", type=int, default=10, help="--wrk: seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="--wrk: concurrent connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="--wrk: wrk threads (default 2)")
    parser.add_argument("--warmup", type=int, default=3, help="--wrk: seconds of warm-up per server (default 3)")
    parser.add_argument("--serve", nargs=2, metavar=("APP", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve[0], int(args.serve[1])))
        return 0
    if args.serve_baseline:
        serve_baseline(args.serve_baseline)
        return 0
    started = time.strftime("%Y%m%d-%H%M%S")
    if args.wrk:
        if not (1 <= args.rounds <= 100 and 1 <= args.duration <= 600 and 1 <= args.warmup <= 600):
            raise whoami.BenchError("--rounds must be 1..100, --duration and --warmup 1..600 seconds")
        return throughput(args, started)
    return count_instructions(args, started)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except whoami.BenchError as exc:
        sys.exit(f"benchmark failed: {exc}")
