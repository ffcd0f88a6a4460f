#!/usr/bin/env bash
# HTTP throughput on loopback, bounded: installs wrk (Debian) if missing, then runs each
# configuration for $1 seconds (default 5) with 1 thread and 16 connections.
set -euo pipefail
cd "$(dirname "$0")"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo run --release --bin http_bench -- "${1:-5}"
