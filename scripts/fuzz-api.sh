#!/usr/bin/env bash
# Fuzzes the admin API against its own OpenAPI document with schemathesis: every check,
# at least 100 examples per operation, against a real `hookpanel serve` on a fresh SQLite
# file. It registers arbitrary URLs, so it runs in a network namespace that has loopback
# alone: nothing it does can leave the machine.
#
#   scripts/fuzz-api.sh [path/to/hookpanel]     (default: target/debug/hookpanel)
#
# The fuzzer sends wrong admin keys on purpose, and its ignored_auth check wants 401 for
# each: the wrong-key limit (429 after 20 from one address; tested in tests/it/clients.rs)
# is raised out of its way.
#
# Needs root (or user namespaces) for `unshare --net`, and schemathesis (pip install
# schemathesis==4.32.5), run as `python3 -m schemathesis.cli`.
set -euo pipefail

binary=${1:-target/debug/hookpanel}
binary=$(realpath "$binary")
examples=${HOOKPANEL_FUZZ_EXAMPLES:-100}
seed=${HOOKPANEL_FUZZ_SEED:-1}
# Extra `serve` flags: the document follows the configuration (e.g. --allow-http).
read -r -a serve_flags <<<"${HOOKPANEL_FUZZ_SERVE_FLAGS:-}"

if [[ ${HOOKPANEL_IN_NETNS:-} != 1 ]]; then
    exec unshare --net -- env HOOKPANEL_IN_NETNS=1 \
        HOOKPANEL_FUZZ_EXAMPLES="$examples" HOOKPANEL_FUZZ_SEED="$seed" \
        HOOKPANEL_FUZZ_SERVE_FLAGS="${HOOKPANEL_FUZZ_SERVE_FLAGS:-}" "$0" "$binary"
fi
ip link set lo up

work=$(mktemp -d)
cleanup() {
    [[ -n ${server:-} ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

port=8790
key="hpk_fuzz_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
HOOKPANEL_ADMIN_KEY=$key "$binary" serve --listen "127.0.0.1:$port" \
    --db "sqlite://$work/fuzz.db" --insecure-plaintext-secrets \
    --wrong-key-burst 1000000 \
    "${serve_flags[@]}" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

status=0
# One worker: with two threads, hypothesis's ast.parse calls raced on CPython 3.11.7's
# AST recursion counter (python/cpython#106905, fixed in later releases) and the run
# ended in "SystemError: AST constructor recursion depth mismatch", now and then.
python3 -m schemathesis.cli --config-file "$(dirname "$0")/schemathesis.toml" \
    run "http://127.0.0.1:$port/v1/admin/openapi.json" \
    --checks all \
    --max-examples "$examples" \
    --header "Authorization: Bearer $key" \
    --suppress-health-check all \
    --workers 1 \
    --seed "$seed" || status=$?
if [[ $status -ne 0 ]]; then
    echo "--- the service's log ---"
    tail -n 50 "$work/serve.log"
fi
exit "$status"
