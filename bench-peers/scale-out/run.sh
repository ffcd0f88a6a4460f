#!/usr/bin/env bash
# Scale-out figure (issue #18), bounded: `scale-out/run.sh [seconds] [runs]` (default 10 and 5).
# Starts a throw-away PostgreSQL on 127.0.0.1 (.ci/postgres.sh: installed from Debian's packages
# if missing, stopped and removed on exit), installs wrk if missing, then `scale_out run`: one
# authz instance alone (1 worker), one with 2 workers, and two with 1 worker each, all on that one
# database, for API keys and JWTs; see src/bin/scale_out.rs for what the figure can and cannot
# show. 6 configurations × (2 s warm-up + runs × seconds) + ~30 s: about 6 minutes by default.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin scale_out
# shellcheck source=/dev/null
source ../.ci/postgres.sh
cargo run --release --bin scale_out -- run "${1:-10}" "${2:-5}"
