#!/usr/bin/env bash
# HTTP throughput on loopback, bounded: `run-http.sh [seconds] [runs]` (default 10 and 5).
# Installs wrk (Debian) if missing, builds http_bench in release, then checks every configuration
# (200 / 401 / 403), warms each up ($HTTP_BENCH_WARMUP seconds, default 2) and runs `runs` rounds
# in which every configuration is loaded once for `seconds` (wrk -t1 -c16, 127.0.0.1 only).
# The report (a markdown table: median requests/s with min–max, % of the no-auth median, p50/p99)
# goes to stdout; progress to stderr. 14 configurations: 5 × 10 s takes about 12.5 minutes.
# HTTP_BENCH_ONLY=substr,substr keeps only matching configurations (plus the no-auth baseline);
# HTTP_BENCH_PIN=1 runs the servers on CPU 1 with 1 worker and wrk on CPU 0 (quiet machine only).
set -euo pipefail
cd "$(dirname "$0")"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo run --release --bin http_bench -- "${1:-10}" "${2:-5}"
