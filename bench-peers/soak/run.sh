#!/usr/bin/env bash
# Soak: the release model-registry on 127.0.0.1 under mixed valid and hostile traffic.
# Usage (from the repository root): bash bench-peers/soak/run.sh [seconds=60] [connections=64]
# Loopback only; stops by itself. Needs wrk (installed from Debian's packages if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
conns=${2:-64}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p model-registry -q
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
AUTHZ_BIND=127.0.0.1:$port AUTHZ_DATABASE_URL="sqlite://$dir/keys.db" RUST_LOG=error \
  target/release/model-registry > "$dir/out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do grep -q "^TOKEN=" "$dir/out" 2>/dev/null && break; sleep 0.1; done
# The banner's first curl line fetches a viewer token from the built-in dev issuer.
line=$(grep -m1 "^TOKEN=" "$dir/out")
eval "$line"
export TOKEN
rss() { awk '/VmRSS/ {print $2 " kB"}' /proc/$pid/status; }
valid=(wrk -t1 -c"$((conns / 2))" -H "Authorization: Bearer $TOKEN")
hostile=(wrk -t1 -c"$((conns / 2))" -s bench-peers/soak/hostile.lua)
"${valid[@]}" -d5s "http://127.0.0.1:$port/datasets" >/dev/null
echo "RSS after warm-up: $(rss)"
# Both at once, for the whole run: valid traffic on one client, hostile on the other.
"${hostile[@]}" -d"${secs}s" "http://127.0.0.1:$port/datasets" > "$dir/hostile" &
hostile_pid=$!
"${valid[@]}" -d"${secs}s" --latency "http://127.0.0.1:$port/datasets" > "$dir/valid"
wait "$hostile_pid"
echo "--- valid (every one must be 200: wrk lists any other status as 'Non-2xx or 3xx')"
cat "$dir/valid"
echo "--- hostile"
cat "$dir/hostile"
echo "RSS after ${secs} s: $(rss)"
curl -s -o /dev/null -w "healthz after: %{http_code}\n" "http://127.0.0.1:$port/healthz"
