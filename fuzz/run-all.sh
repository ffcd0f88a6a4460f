#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds (default 600) one after the other, on stable Rust
# (no sanitizer: the code is safe Rust with `unsafe_code = "forbid"`; panics, assertion failures,
# timeouts and memory blow-ups are what is hunted). Findings land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
python3 seed.py
for t in authorization_header verify_token claims differential policy_file permission_grammar api_key jwks_document; do
    echo "== $t for ${seconds}s"
    cargo fuzz run "$t" --sanitizer none -O -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|thread .* panicked|ERROR)" || true
done
