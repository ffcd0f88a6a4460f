#!/usr/bin/env bash
# Mints tokens with other JOSE libraries (PyJWT from PyPI, jose from npm) at pinned versions
# into a temporary folder, and installs oidc-provider (npm) there for the identity-provider test
# and panva's dpop (npm) for the DPoP proofs test; openapi-spec-validator (PyPI) checks the
# model registry's OpenAPI document (tests/tests/it/openapi.rs).
# Sourced by .ci/run: exports AUTHZ_INTEROP_DIR for tests/tests/it/{interop,oidc,openapi}.rs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AUTHZ_INTEROP_DIR=$(mktemp -d /tmp/authz-interop.XXXXXX)
export AUTHZ_INTEROP_DIR

python3 -m venv "$AUTHZ_INTEROP_DIR/venv"
"$AUTHZ_INTEROP_DIR/venv/bin/pip" install -q "pyjwt[crypto]==2.15.1" "cryptography==50.0.2" \
    "openapi-spec-validator==0.9.0"
"$AUTHZ_INTEROP_DIR/venv/bin/python" "$here/tests/interop/pyjwt_mint.py" "$AUTHZ_INTEROP_DIR/pyjwt.json"

mkdir -p "$AUTHZ_INTEROP_DIR/node"
cp "$here/tests/interop/jose_mint.mjs" "$here/tests/interop/oidc_idp.mjs" "$here/tests/interop/dpop_mint.mjs" \
    "$AUTHZ_INTEROP_DIR/node/"
(cd "$AUTHZ_INTEROP_DIR/node" && npm init -y >/dev/null &&
    npm install --silent --no-audit --no-fund jose@6.2.18 oidc-provider@9.13.3 dpop@2.1.2 >/dev/null)
node "$AUTHZ_INTEROP_DIR/node/jose_mint.mjs" "$AUTHZ_INTEROP_DIR/jose.json"
echo "interop tokens in $AUTHZ_INTEROP_DIR: $(ls "$AUTHZ_INTEROP_DIR"/*.json | xargs -n1 basename | tr '\n' ' ')"
