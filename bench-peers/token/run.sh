#!/usr/bin/env bash
# Token endpoint vs oidc-provider, side by side in one run on loopback (issue 12).
# Usage (from anywhere): bash bench-peers/token/run.sh [seconds=10] [rounds=3]
#
# Servers, one at a time, each on 127.0.0.1 with the machine to itself but for wrk, in rounds
# (this machine's speed drifts by up to 2x within minutes: every round measures every server
# again, and each authz row is compared with the oidc-provider run of its own round):
#   oidc-provider (npm, pinned; in-memory adapter; ES256 JWT access tokens), first in a round;
#   the release model-registry (its production /token, ES256) with its store as
#     AUTHZ_DATABASE_URL picks it: a SQLite file (the default; WAL, synchronous=FULL) and SQLite
#     in memory (`sqlite::memory:`, like for like with oidc-provider's adapter), the latter
#     also with RUST_LOG=warn (what the one log line per token costs); with
#     AUTHZ_BENCH_PG_URL=postgres://… also PostgreSQL (a database made for the run on that
#     server, made again each round, dropped at the end).
# The summary: per (server, grant) the median requests/s with min-max over the rounds, and the
# median (min-max) of the per-round ratios to oidc-provider.
# Grants: client_credentials (client_secret_basic) and refresh_token with rotation (a pool of
# tokens per server, each response's new token back into the pool; see refresh.lua).
# Each (server, grant): 2 s of warm-up, then $1 seconds of `wrk -t1 -c16`. Bounded: every
# wait has a limit, every process started here is stopped on exit, the temporary folder (which
# holds the demo secrets) is removed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
secs=${1:-10}
rounds=${2:-3}
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs < 1 || secs > 300)); then
  echo "seconds: 1..300" >&2
  exit 2
fi
if ! [[ $rounds =~ ^[0-9]+$ ]] || ((rounds < 1 || rounds > 20)); then
  echo "rounds: 1..20" >&2
  exit 2
fi
round=0
warm=2
conns=16
tokens=256 # refresh tokens per server: the pool, well above the connection count

for tool in node npm python3 cargo; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

dir=$(mktemp -d /tmp/authz-token-bench.XXXXXX)
pids=()
script=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [[ -z $script ]] || rm -f "$script"
  [[ -z ${pg_db:-} ]] || psql -q "$AUTHZ_BENCH_PG_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# oidc-provider and jose at the versions the interop tests pin (reused from .ci/interop.sh's
# folder when it is there).
node_dir="$dir/node"
if [[ -n ${AUTHZ_INTEROP_DIR:-} && -f $AUTHZ_INTEROP_DIR/node/node_modules/oidc-provider/package.json ]] &&
  grep -q '"version": "9.13.3"' "$AUTHZ_INTEROP_DIR/node/node_modules/oidc-provider/package.json"; then
  node_dir="$AUTHZ_INTEROP_DIR/node"
else
  mkdir -p "$node_dir"
  (cd "$node_dir" && npm init -y >/dev/null &&
    timeout 300 npm install --silent --no-audit --no-fund jose@6.2.18 oidc-provider@9.13.3 >/dev/null)
fi
# Next to its node_modules, so that its imports resolve.
script="$node_dir/oidc_bench_$$.mjs"
cp "$here/oidc_bench.mjs" "$script"

cargo build --release -p model-registry -q
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release/model-registry"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for PID FILE PATTERN: until FILE has a line matching PATTERN (at most 20 s).
wait_for() {
  local _
  for _ in $(seq 200); do
    grep -q "$3" "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || { echo "server exited:" >&2; tail -5 "$2" >&2; exit 1; }
    sleep 0.1
  done
  echo "server not ready after 20 s" >&2
  exit 1
}

# stop PID: stops a server started here and forgets it (a PID kept after its process ended
# could be reused by another process by the time the exit trap runs).
stop() {
  local p kept=()
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
  pids=("${kept[@]}")
}

results="$dir/results"
: >"$results"

# measure LABEL GRANT URL: warm-up, then the measured run; appends a row to $results.
# client_credentials reads BASIC; refresh_token reads CLIENT_ID and $dir/pool (the tokens).
measure() {
  local label=$1 grant=$2 url=$3 out="$dir/wrk.out" rps result sock
  if [[ $grant == client_credentials ]]; then
    wrk -t1 -c"$conns" -d"${warm}s" -s "$here/client_credentials.lua" "$url" >/dev/null
    wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$here/client_credentials.lua" "$url" >"$out"
  else
    POOL_IN="$dir/pool" POOL_OUT="$dir/pool.warm" \
      wrk -t1 -c"$conns" -d"${warm}s" -s "$here/refresh.lua" "$url" >/dev/null
    POOL_IN="$dir/pool.warm" POOL_OUT="$dir/pool.end" \
      wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$here/refresh.lua" "$url" >"$out"
  fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  result=$(grep '^RESULT' "$out")
  sock=$(grep -o 'Socket errors:.*' "$out" || echo "Socket errors: none")
  local p50 p99
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$grant" "$rps" "$p50" "$p99" "${result#RESULT }" "$sock" "$round" >>"$results"
  grep -E '^(status|pool empty)' "$out" | sed "s/^/  $label $grant: /" >&2 || true
  printf '%-34s %-19s %10s req/s  %s  (%s)\n' "$label" "$grant" "$rps" "${result#RESULT }" "$sock"
}

run_oidc() {
  local label=$1 port pid
  port=$(free_port)
  node "$script" "$port" "$dir" "$tokens" >"$dir/oidc.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for "$pid" "$dir/oidc.log" '^ready'
  BASIC=$(cat "$dir/oidc.basic") measure "$label" client_credentials "http://127.0.0.1:$port/token"
  cp "$dir/oidc.refresh" "$dir/pool"
  CLIENT_ID=bench-spa measure "$label" refresh_token "http://127.0.0.1:$port/token"
  stop "$pid"
}

# run_authz LABEL MODE [RUST_LOG]: MODE is file (default SQLite file), memory or postgres;
# RUST_LOG unset means the binary's default (info: one log line per token issued).
run_authz() {
  local label=$1 mode=$2 level=${3:-} port pid url basic db
  port=$(free_port)
  if [[ $mode == memory ]]; then
    db="sqlite::memory:"
  elif [[ $mode == postgres ]]; then
    # A database of its own on the server AUTHZ_BENCH_PG_URL names, dropped on exit.
    pg_db="authz_token_bench_$$"
    # WITH (FORCE): the previous round's server may still have a backend on it.
    psql -q "$AUTHZ_BENCH_PG_URL" -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
    psql -q "$AUTHZ_BENCH_PG_URL" -c "CREATE DATABASE $pg_db" >/dev/null
    db="${AUTHZ_BENCH_PG_URL%/*}/$pg_db"
    AUTHZ_DATABASE_URL=$db "$bin" clients create bench-cc --role viewer >"$dir/$mode.secret" 2>/dev/null
  else
    db="sqlite://$dir/$mode.db"
    rm -f "$dir/$mode.db" "$dir/$mode.db-wal" "$dir/$mode.db-shm"
    # A confidential client-credentials client, registered with the CLI in the same database;
    # its secret (printed alone on stdout) goes to a file of the temporary folder.
    AUTHZ_DATABASE_URL=$db "$bin" clients create bench-cc --role viewer >"$dir/$mode.secret" 2>/dev/null
  fi
  # The binary's defaults otherwise; its log (stderr) goes to a file.
  if [[ -n $level ]]; then
    env RUST_LOG="$level" AUTHZ_BIND="127.0.0.1:$port" AUTHZ_DATABASE_URL="$db" "$bin" \
      >"$dir/authz.out" 2>"$dir/authz.err" &
  else
    env -u RUST_LOG AUTHZ_BIND="127.0.0.1:$port" AUTHZ_DATABASE_URL="$db" "$bin" \
      >"$dir/authz.out" 2>"$dir/authz.err" &
  fi
  pid=$!
  pids+=("$pid")
  wait_for "$pid" "$dir/authz.out" '^People'
  url="http://127.0.0.1:$port"
  if [[ $mode == memory ]]; then
    # No CLI can reach an in-memory database: the demo client the banner prints (same kind:
    # confidential, one role, client_credentials only).
    basic=$(grep -m1 -o "viewer-client:[^']*" "$dir/authz.out" | tr -d '\n' | base64 -w0)
  else
    basic=$(printf 'bench-cc:%s' "$(cat "$dir/$mode.secret")" | base64 -w0)
  fi
  BASIC=$basic measure "$label" client_credentials "$url/token"
  timeout 120 python3 "$here/authz_refresh_tokens.py" "$url" "$dir/authz.out" "$dir/pool" "$tokens"
  CLIENT_ID=spa measure "$label" refresh_token "$url/token"
  stop "$pid"
}

# What one durable commit costs on the disk the SQLite files live on (50 fsyncs, bounded).
fsync_ms=$(python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
t = time.perf_counter()
for i in range(50):
    os.write(fd, b"x" * 4096)
    os.fsync(fd)
print("%.2f" % ((time.perf_counter() - t) * 1000 / 50))
os.close(fd)' "$dir/fsync.probe")
echo "fsync of a 4 KiB write in $dir: ${fsync_ms} ms (mean of 50)"
echo "$(nproc) CPUs (load average $(cut -d" " -f1-3 /proc/loadavg) before the run), $(node --version), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), ${secs} s per run after ${warm} s of warm-up, wrk -t1 -c$conns, $rounds rounds"
for round in $(seq "$rounds"); do
  echo "== round $round of $rounds"
  run_oidc "oidc-provider"
  run_authz "authz, SQLite file" file
  run_authz "authz, SQLite in memory" memory
  run_authz "authz, SQLite in memory, RUST_LOG=warn" memory warn
  if [[ -n ${AUTHZ_BENCH_PG_URL:-} ]]; then
    run_authz "authz, PostgreSQL" postgres
  fi
done

echo
echo "| server | store | grant | requests/s, median (min–max) | vs oidc-provider, median of the rounds' ratios (min–max) | p50 / p99 of the median round | non-200 (all rounds) |"
echo "|---|---|---|---|---|---|---|"
# Rows: label grant rps p50 p99 result sockets round.
awk -F'\t' '
  function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    key = $1 "\t" $2
    if (!(key in n)) { order[++keys] = key }
    n[key]++; rps[key, n[key]] = $3; p50[key, n[key]] = $4; p99[key, n[key]] = $5; rnd[key, n[key]] = $8
    split($6, r, " "); sub(/non200=/, "", r[2]); bad[key] += r[2]
    if ($1 ~ /^oidc-provider/) base[$2, $8] = $3
  }
  END {
    for (k = 1; k <= keys; k++) {
      key = order[k]; split(key, kg, "\t"); label = kg[1]; grant = kg[2]; m = n[key]
      delete v; delete q
      lo = hi = rps[key, 1]; rlo = rhi = ""
      for (i = 1; i <= m; i++) {
        v[i] = rps[key, i]; if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i]
        b = base[grant, rnd[key, i]]
        q[i] = b > 0 ? rps[key, i] / b : 0
        if (rlo == "" || q[i] < rlo) rlo = q[i]; if (rhi == "" || q[i] > rhi) rhi = q[i]
      }
      med = median(v, m)
      # The round closest to the median, for its latencies.
      best = 1
      for (i = 1; i <= m; i++) { d = rps[key, i] - med; if (d < 0) d = -d; if (i == 1 || d < bd) { bd = d; best = i } }
      rmed = median(q, m)
      store = label ~ /^oidc/ ? "memory (default adapter)" : label
      sub(/^authz, /, "", store)
      sub(/, RUST_LOG=warn$/, " (RUST_LOG=warn)", store)
      name = label ~ /^oidc/ ? "oidc-provider" : "authz"
      printf "| %s | %s | %s | %.0f (%.0f–%.0f) | %.2f× (%.2f–%.2f) | %s / %s | %d |\n", name, store, grant, med, lo, hi, rmed, rlo, rhi, p50[key, best], p99[key, best], bad[key]
    }
  }' "$results"
