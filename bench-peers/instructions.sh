#!/usr/bin/env bash
# Instructions per token on the production path, counted by valgrind's callgrind: the same count
# for the same binary and input whatever else the machine is doing, so two builds compare on a
# noisy host where nanoseconds do not (BENCHMARKS.md, "Instruction counts").
#
#   bench-peers/instructions.sh [ALG ...]      (default: HS256 RS256 ES256)
#   JWT_BENCH=/tmp/jwt-old bench-peers/instructions.sh   (a bench binary copied from another build)
#   bench-peers/instructions.sh tower          (TOWER_BENCH=... likewise)
#
# `tower`: authz-axum's `tower` bench instead, prepared router, HS256 cache hit: instructions per
# request (each request's `Runtime::block_on` collected) with the layer and guard and without
# authentication, and the difference.
#
# Builds authz-core's `jwt` criterion bench (the bench profile: optimized, with symbols), then
# per algorithm runs two of its benchmarks for one second each under callgrind, collecting only
# inside `Authenticator::authenticate` and the future it returns (what `AuthLayer` calls):
#   - `authz_full_path_uncached`: cache off, every call verifies the token to a Principal;
#   - `authz_cache_hit`: cache on, every call is a hit.
# The bench's set-up authenticates each algorithm's token once before any benchmark runs; a run
# whose filter matches no benchmark counts that set-up, and it is taken off every figure.
# It prints instructions per call for both, and splits the full path into the signature check
# (`JwtVerifier::check_signature`: the key lookup, the signature's base64 and the crypto) and
# everything else. The crypto's count is not its time: valgrind hides SHA-NI and AVX-512, so
# aws-lc runs its AVX code for SHA-2 under it. Compare "everything else" across builds.
# Needs valgrind (Debian's package; installed if missing, as root) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null || { echo "instructions.sh needs python3" >&2; exit 1; }
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
[ $# -gt 0 ] || set -- HS256 RS256 ES256
work=$(mktemp -d /tmp/authz-instructions.XXXXXX)
trap 'rm -rf "$work"' EXIT

# The executable cargo builds for bench $2 of package $1.
bench_binary() {
    local json
    json=$(cargo bench -p "$1" --bench "$2" --no-run --message-format=json)
    python3 -c 'import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$2" <<<"$json"
}

if [ "$1" = tower ]; then
    [ $# -eq 1 ] || { echo "instructions.sh tower takes no other argument" >&2; exit 1; }
    bin=${TOWER_BENCH:-}
    [ -n "$bin" ] || bin=$(bench_binary authz-axum tower)
    [ -x "$bin" ] || { echo "no tower bench binary ($bin)" >&2; exit 1; }
    # Instructions collected and block_on calls (over all callers) for the benchmarks matching $1.
    per_request() {
        local out="$work/cg.out"
        (cd "$work" && valgrind --tool=callgrind --callgrind-out-file="$out" \
            --toggle-collect='*Runtime::block_on' \
            "$bin" --bench --profile-time 1 "$1" >"$work/log" 2>&1) || { cat "$work/log" >&2; exit 1; }
        { callgrind_annotate "$out"; echo "=== tree"; callgrind_annotate --inclusive=yes --tree=calling "$out"; } 2>/dev/null | python3 -c '
import re, sys
total = calls = 0
tree = False
for line in sys.stdin:
    if line.startswith("=== tree"):
        tree = True
    elif "PROGRAM TOTALS" in line and not tree:
        total = int(line.split()[0].replace(",", ""))
    elif tree:
        m = re.match(r"\s*[\d,]+ \(.*?\)\s+>\s*\S*?:\S*Runtime::block_on \(([\d,]+)x\)", line)
        if m:
            calls += int(m[1].replace(",", ""))
if not (total and calls):
    sys.exit("callgrind found no calls to Runtime::block_on")
print(total, calls)'
    }
    counted=$(per_request 'tower/no-benchmark-matches-this$')
    read -r setup setup_calls <<<"$counted"
    counted=$(per_request 'tower/HS256_cache_hit/prepared/no_auth_same_request$')
    read -r plain plain_calls <<<"$counted"
    counted=$(per_request 'tower/HS256_cache_hit/prepared/authz_layer_and_guard$')
    read -r authz authz_calls <<<"$counted"
    p=$(((plain - setup) / (plain_calls - setup_calls)))
    a=$(((authz - setup) / (authz_calls - setup_calls)))
    printf '| no authentication | layer + guard, cache hit | overhead |\n|---|---|---|\n| %d | %d | %d (%s of no-auth) |\n' \
        "$p" "$a" "$((a - p))" "$(python3 -c "print(round($((a - p)) / $p, 2))")"
    exit 0
fi

bin=${JWT_BENCH:-}
[ -n "$bin" ] || bin=$(bench_binary authz-axum-core jwt)
[ -x "$bin" ] || { echo "no jwt bench binary ($bin)" >&2; exit 1; }

# Runs the benchmarks matching $1 under callgrind; prints the instructions collected, the calls
# to authenticate() (over all callers) and check_signature's inclusive count.
count() {
    local out="$work/cg.out"
    (cd "$work" && valgrind --tool=callgrind --callgrind-out-file="$out" \
        --toggle-collect='*Authenticator::authenticate*' \
        --toggle-collect='*Authentication as core::future::future::Future>::poll*' \
        "$bin" --bench --profile-time 1 "$1" >"$work/log" 2>&1) || { cat "$work/log" >&2; exit 1; }
    # The flat inclusive list gives each function's cost; the call tree, the calls.
    { callgrind_annotate --inclusive=yes "$out"; echo "=== tree"; callgrind_annotate --inclusive=yes --tree=calling "$out"; } 2>/dev/null | python3 -c '
import re, sys
total = calls = sig = 0
tree = False
for line in sys.stdin:
    if line.startswith("=== tree"):
        tree = True
        continue
    if "PROGRAM TOTALS" in line and not tree:
        total = int(line.split()[0].replace(",", ""))
    m = re.match(r"\s*([\d,]+) \(.*?\)\s+([*>]?)\s*\S*?:(\S+)(?: \(([\d,]+)x\))?(?: \[|$)", line.rstrip())
    if not m:
        continue
    cost, kind, fn, n = int(m[1].replace(",", "")), m[2], m[3], m[4]
    if not tree and fn == "authz_core::jwt::verifier::JwtVerifier::check_signature":
        sig = max(sig, cost)
    if tree and kind == ">" and fn == "authz_core::auth::Authenticator::authenticate" and n:
        calls += int(n.replace(",", ""))
if not (total and calls and sig):
    sys.exit("callgrind found no calls to authenticate() or check_signature(): renamed or inlined?")
print(total, calls, sig)'
}

counted=$(count 'verify/no-benchmark-matches-this$')
read -r setup setup_calls setup_sig <<<"$counted"
printf '| alg | full path (cache off) | of which the signature check | everything else | cache hit |\n|---|---|---|---|---|\n'
for alg in "$@"; do
    counted=$(count "verify/$alg/authz_full_path_uncached\$")
    read -r total calls sig <<<"$counted"
    counted=$(count "verify/$alg/authz_cache_hit\$")
    read -r hit hit_calls _ <<<"$counted"
    n=$((calls - setup_calls))
    full=$(((total - setup) / n))
    s=$(((sig - setup_sig) / n))
    printf '| %s | %d | %d | %d | %d |\n' "$alg" "$full" "$s" "$((full - s))" "$(((hit - setup) / (hit_calls - setup_calls)))"
done
