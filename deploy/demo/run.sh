#!/usr/bin/env bash
# Runs the demo: nats-server (JetStream), the demo IdP, the demo upstream and `portcullis all`.
# Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=".tmp/demo"
mkdir -p "$state"
scripts="$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$scripts/nats-server" -a 127.0.0.1 -p 4222 -js -sd "$state/jetstream" >"$state/nats.log" 2>&1 &
pids+=($!)
(cd tests/idp && IDP_PORT=9090 \
    IDP_REDIRECT_URIS=http://authenticate.localhost:8080/oauth2/callback \
    IDP_POST_LOGOUT_REDIRECT_URIS=http://authenticate.localhost:8080/.portcullis/signed_out \
    exec node provider.mjs) >"$state/idp.out" 2>"$state/idp.log" &
pids+=($!)
UPSTREAM_PORT=9091 node deploy/demo/upstream.mjs >"$state/upstream.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do grep -q READY "$state/idp.out" 2>/dev/null && break; sleep 0.1; done

target/debug/portcullis all --config deploy/examples/demo.yaml &
pids+=($!)

cat <<'TXT'

  Portcullis demo is starting.

    http://app.localhost:8080     anyone @example.com
    http://admin.localhost:8080   IdP group "admins" only
    http://public.localhost:8080  no sign-in

  Demo users (any password): alice (admins, staff), bob (staff), mallory (@evil.example: denied)
  Your session: http://app.localhost:8080/.portcullis/   Logs: .tmp/demo/   Stop: Ctrl-C

TXT
wait -n "${pids[@]}"
