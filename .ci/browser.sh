#!/usr/bin/env bash
# Debian's Chromium and playwright-core (npm, pinned; it downloads no browser) in a temporary
# folder, for the browser tests of the sign-in pages (tests/browser/flows.mjs).
# Sourced by .ci/run: exports AUTHZ_BROWSER_DIR for tests/tests/it/browser.rs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # Only refresh the package lists when apt does not know the package yet.
    if ! apt-cache show chromium >/dev/null 2>&1; then
        $sudo apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

AUTHZ_BROWSER_DIR=$(mktemp -d /tmp/authz-browser.XXXXXX)
export AUTHZ_BROWSER_DIR
cp "$here/tests/browser/flows.mjs" "$AUTHZ_BROWSER_DIR/"
(cd "$AUTHZ_BROWSER_DIR" && npm init -y >/dev/null &&
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund playwright-core@1.65.1 >/dev/null)
echo "browser tests: $(/usr/bin/chromium --version 2>/dev/null | head -1), playwright-core in $AUTHZ_BROWSER_DIR"
