#!/usr/bin/env bash
# Load benchmark (`just bench`): the same wrk load against five targets on one machine, in one run.
#
#   (a) upstream   nginx `return 200 "ok"`                       (the ceiling)
#   (b) nginx      nginx reverse proxy to (a)                    (the proxy baseline)
#   (c) apache     Apache httpd + mod_auth_openidc to (a)        (the identity-aware peer)
#   (d) portcullis `portcullis all` (release) to (a)             (decision cache on: default)
#   (e) pc-nocache `portcullis all` to (a), decision_cache off   (every request asks authorize)
#
# Every server listens on 127.0.0.1 on a free port picked now; all state, configs and logs are
# in .tmp/bench/. Results: a table on stdout, bench/results/latest.{json,png}. See bench/README.md.
#
# Knobs (environment): BENCH_ROUNDS (5), BENCH_DURATION (10s), BENCH_CONNECTIONS (64),
# BENCH_THREADS (2), BENCH_WARMUP (3s), BENCH_PAUSE (2, seconds idle before each run),
# BENCH_NGINX_PROXY_WORKERS (1), BENCH_STRICT=1 (exit 1
# when an acceptance target fails), BENCH_SKIP_INSTALL=1, BENCH_SKIP_BUILD=1, BENCH_BIN (another
# portcullis binary, for developing the harness only).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

rounds="${BENCH_ROUNDS:-5}"
duration="${BENCH_DURATION:-10s}"
connections="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"
warmup="${BENCH_WARMUP:-3s}"
pause="${BENCH_PAUSE:-2}"
proxy_workers="${BENCH_NGINX_PROXY_WORKERS:-1}"
cookie_name="_portcullis_bench"

state="$root/.tmp/bench"
results="$root/bench/results"
bin="${BENCH_BIN:-$root/target/bench/release/portcullis}"
scripts="$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')"
nats_server="$scripts/nats-server"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- cleanup: every process we start runs in its own process group (setsid); kill the groups ---
pgids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "${#pgids[@]}" -gt 0 ]; then
        log "stopping ${#pgids[@]} process groups"
        for g in "${pgids[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
        for _ in $(seq 1 50); do
            # a group is gone when it has no process left but zombies (exited, not yet reaped)
            # shellcheck disable=SC2009  # pgrep would count the zombies too
            ps -o stat= -g "$(IFS=,; echo "${pgids[*]}")" 2>/dev/null | grep -qv '^Z' || break
            sleep 0.1
        done
        for g in "${pgids[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
        wait 2>/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run CMD in its own session and process group (setsid execs it, so $! is
# CMD's pid and its group id), output to $state/NAME.log. pid[NAME] is its pid.
declare -A pid
start() {
    local name="$1"; shift
    setsid "$@" >"$state/$name.log" 2>&1 </dev/null &
    pgids+=("$!")
    pid[$name]=$!
}

alive_or_die() { # NAME PID
    kill -0 "$2" 2>/dev/null || { tail -n 30 "$state/$1.log" >&2 || true; die "$1 exited during start-up (log: $state/$1.log)"; }
}

# wait_http NAME PID URL HOST EXPECTED_CODES: poll until the URL answers one of the codes.
wait_http() {
    local name="$1" p="$2" url="$3" host="$4" codes="$5" code=""
    for _ in $(seq 1 300); do
        alive_or_die "$name" "$p"
        code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host" --max-time 2 "$url" || true)"
        case " $codes " in *" $code "*) return 0 ;; esac
        sleep 0.1
    done
    die "$name did not become ready at $url (last status $code; log: $state/$name.log)"
}

# --- 1. dependencies --------------------------------------------------------------------------
install_deps() {
    local sudo="" missing=()
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    [ -x /usr/sbin/nginx ] || missing+=(nginx)
    [ -x /usr/sbin/apache2 ] || missing+=(apache2)
    [ -f /usr/lib/apache2/modules/mod_auth_openidc.so ] || missing+=(libapache2-mod-auth-openidc)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]} (apt)"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # The packages start their system services (init scripts; there is no systemd here) on
        # port 80. Stop them and keep them from starting at boot: we run private instances.
        local svc
        for svc in nginx apache2 apache-htcacheclean; do
            [ -x "/etc/init.d/$svc" ] || continue
            $sudo service "$svc" stop >/dev/null 2>&1 || true
            $sudo update-rc.d "$svc" disable >/dev/null 2>&1 || true
        done
    fi
    if ! python3 -c 'import matplotlib' >/dev/null 2>&1; then
        log "installing matplotlib (pip)"
        python3 -m pip install --quiet --disable-pip-version-check matplotlib
    fi
    [ -x "$nats_server" ] || die "nats-server not found at $nats_server (run: just deps)"
    [ -d tests/idp/node_modules/oidc-provider ] || die "the test IdP's packages are missing (run: just deps)"
}

if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then install_deps; fi

# A system nginx/apache that someone else started is not ours to stop, but it would share the two
# cores with the benchmark: say so.
for p in /run/nginx.pid /run/apache2/apache2.pid; do
    if [ -s "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null; then
        log "warning: a system server is running (pid file $p); it shares the CPU with the benchmark"
    fi
done

# --- 2. build -----------------------------------------------------------------------------------
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    log "building the release binary (CARGO_TARGET_DIR=target/bench; ~7 min when clean)"
    CARGO_TARGET_DIR="$root/target/bench" cargo build --release --locked -p portcullis
fi
[ -x "$bin" ] || die "no release binary at $bin"

# --- 3. start everything ------------------------------------------------------------------------
rm -rf "$state/run"
mkdir -p "$state/run" "$results"
state="$state/run"

read -r p_up p_nginx p_apache p_pc p_pcn p_nats p_natsmon p_idp < <(python3 - <<'PY'
import socket
socks = []
for _ in range(8):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
log "ports: upstream=$p_up nginx=$p_nginx apache=$p_apache portcullis=$p_pc nocache=$p_pcn nats=$p_nats idp=$p_idp"

host_pc="app.localhost:$p_pc"
host_pcn="app.localhost:$p_pcn"
host_apache="apache.localhost:$p_apache"
apache_redirect="http://$host_apache/redirect_uri"

# nats-server with JetStream
mkdir -p "$state/nats"
start nats "$nats_server" -a 127.0.0.1 -p "$p_nats" -m "$p_natsmon" -js -sd "$state/nats/js"
wait_http nats "${pid[nats]}" "http://127.0.0.1:$p_natsmon/healthz?js-enabled-only=true" "127.0.0.1" "200"

# the test IdP
start idp env IDP_PORT="$p_idp" \
    IDP_REDIRECT_URIS="http://authenticate.localhost:$p_pc/oauth2/callback,http://authenticate.localhost:$p_pcn/oauth2/callback,$apache_redirect" \
    node "$root/tests/idp/provider.mjs"
for _ in $(seq 1 100); do grep -q '^READY ' "$state/idp.log" && break; alive_or_die idp "${pid[idp]}"; sleep 0.1; done
issuer="$(sed -n 's/^READY //p' "$state/idp.log" | head -n1)"
[ -n "$issuer" ] || die "the IdP did not print READY (log: $state/idp.log)"

# nginx: (a) the upstream, (b) the reverse proxy
nginx_conf() { # NAME WORKERS SERVER_BLOCK [HTTP_EXTRA]
    local dir="$state/$1"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes $2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    ${4:-}
    $3
}
EOF
}
nginx_conf nginx-upstream 1 "server { listen 127.0.0.1:$p_up; location / { default_type text/plain; return 200 \"ok\"; } }"
nginx_conf nginx-proxy "$proxy_workers" "server {
        listen 127.0.0.1:$p_nginx;
        location / {
            proxy_pass http://upstream_a;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host \$host;
        }
    }" "upstream upstream_a { server 127.0.0.1:$p_up; keepalive 64; keepalive_requests 1000000; }"
start nginx-upstream /usr/sbin/nginx -e "$state/nginx-upstream/logs/error.log" -p "$state/nginx-upstream" -c "$state/nginx-upstream/nginx.conf"
start nginx-proxy /usr/sbin/nginx -e "$state/nginx-proxy/logs/error.log" -p "$state/nginx-proxy" -c "$state/nginx-proxy/nginx.conf"
wait_http nginx-upstream "${pid[nginx-upstream]}" "http://127.0.0.1:$p_up/" "127.0.0.1" "200"
wait_http nginx-proxy "${pid[nginx-proxy]}" "http://127.0.0.1:$p_nginx/" "127.0.0.1" "200"

# (c) Apache httpd (event MPM) + mod_auth_openidc
mods=/usr/lib/apache2/modules
mkdir -p "$state/apache/run" "$state/apache/logs"
cat >"$state/apache/httpd.conf" <<EOF
ServerRoot "$state/apache"
ServerName $host_apache
Listen 127.0.0.1:$p_apache
PidFile $state/apache/run/httpd.pid
DefaultRuntimeDir $state/apache/run
ErrorLog $state/apache/logs/error.log
LogLevel warn
User www-data
Group www-data

LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule proxy_module $mods/mod_proxy.so
LoadModule proxy_http_module $mods/mod_proxy_http.so
LoadModule auth_openidc_module $mods/mod_auth_openidc.so

# Enough threads for 64 keep-alive connections without queueing.
StartServers 2
ServerLimit 4
ThreadsPerChild 64
ThreadLimit 64
MinSpareThreads 64
MaxSpareThreads 256
MaxRequestWorkers 256
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75

OIDCProviderMetadataURL $issuer/.well-known/openid-configuration
OIDCClientID portcullis
OIDCClientSecret portcullis-secret
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCRedirectURI $apache_redirect
OIDCCryptoPassphrase $(head -c 24 /dev/urandom | base64)
OIDCScope "openid email profile"
OIDCPKCEMethod S256
OIDCSessionType server-cache
OIDCCacheType shm

<Location />
    AuthType openid-connect
    Require valid-user
</Location>
ProxyPass / http://127.0.0.1:$p_up/ keepalive=On
ProxyPassReverse / http://127.0.0.1:$p_up/
EOF
start apache /usr/sbin/apache2 -f "$state/apache/httpd.conf" -DFOREGROUND
# Without a session and without Accept: text/html, mod_auth_openidc answers 401.
wait_http apache "${pid[apache]}" "http://127.0.0.1:$p_apache/" "$host_apache" "401 302"

# (d) and (e) Portcullis
secret() { head -c 32 /dev/urandom | base64; }
shared_secret="$(secret)"; cookie_secret="$(secret)"
pc_conf() { # NAME PORT PREFIX EXTRA
    mkdir -p "$state/$1"
    cat >"$state/$1/config.yaml" <<EOF
address: 127.0.0.1:$2
insecure_server: true
authenticate_service_url: http://authenticate.localhost:$2
idp_provider: oidc
idp_provider_url: $issuer
idp_client_id: portcullis
idp_client_secret: portcullis-secret
idp_scopes: [openid, profile, email, groups, offline_access]
shared_secret: $shared_secret
cookie_secret: $cookie_secret
cookie_name: $cookie_name
cookie_expire: 8h
nats:
  url: nats://127.0.0.1:$p_nats
  subject_prefix: $3
routes:
  - from: http://app.localhost:$2
    to: http://127.0.0.1:$p_up
    allowed_domains: [example.com]
$4
EOF
}
pc_conf portcullis "$p_pc" pcbench ""
pc_conf pc-nocache "$p_pcn" pcnocache "decision_cache: {enabled: false}"
start portcullis "$bin" all --config "$state/portcullis/config.yaml"
start pc-nocache "$bin" all --config "$state/pc-nocache/config.yaml"
wait_http portcullis "${pid[portcullis]}" "http://127.0.0.1:$p_pc/ping" "$host_pc" "200"
wait_http pc-nocache "${pid[pc-nocache]}" "http://127.0.0.1:$p_pcn/ping" "$host_pcn" "200"
# (e) is only meaningful if this build knows `decision_cache`; otherwise it warns "unknown key".
decision_cache_known=true
if "$bin" check-config --config "$state/pc-nocache/config.yaml" 2>&1 | grep -i 'decision_cache' >"$state/check-config.txt"; then
    decision_cache_known=false
    log "WARNING: this portcullis does not know decision_cache (it said: $(head -c 200 "$state/check-config.txt")); (e) runs WITH the cache"
fi

# --- 4. log in ----------------------------------------------------------------------------------
log "logging in (alice) through the IdP"
cookie_pc="$(python3 bench/login.py login --url "http://127.0.0.1:$p_pc/" --host "$host_pc" --cookie "$cookie_name")" \
    || die "login through portcullis failed (logs: $state/portcullis.log, $state/idp.log)"
cookie_pcn="$(python3 bench/login.py login --url "http://127.0.0.1:$p_pcn/" --host "$host_pcn" --cookie "$cookie_name")" \
    || die "login through portcullis (no cache) failed (logs: $state/pc-nocache.log, $state/idp.log)"
cookie_apache="$(python3 bench/login.py login --url "http://127.0.0.1:$p_apache/" --host "$host_apache" --cookie mod_auth_openidc_session)" \
    || die "login through Apache failed (logs: $state/apache/logs/error.log, $state/idp.log)"

# --- 5. load ------------------------------------------------------------------------------------
# target table: name|port|host|cookie header ('' for none)
targets=(
    "upstream|$p_up|127.0.0.1:$p_up|"
    "nginx|$p_nginx|127.0.0.1:$p_nginx|"
    "apache|$p_apache|$host_apache|mod_auth_openidc_session=$cookie_apache"
    "portcullis|$p_pc|$host_pc|$cookie_name=$cookie_pc"
    "portcullis-nocache|$p_pcn|$host_pcn|$cookie_name=$cookie_pcn"
)

# verify NAME PORT HOST COOKIE: the request wrk sends (Host, Cookie, no Accept) must get 200 "ok".
# Sets resp_size to the response's size in bytes (headers + body): wrk's bytes/request must match
# it, which shows that every response under load was this one (not a redirect or an error page).
verify() {
    local args=(-s --max-time 5 -H "Host: $3" -H 'Accept:' -H 'User-Agent:' -o "$state/verify.body"
                -w '%{http_code} %{size_header} %{size_download}\n')
    [ -n "$4" ] && args+=(-H "Cookie: $4")
    local code hdr body
    read -r code hdr body < <(curl "${args[@]}" "http://127.0.0.1:$2/" || echo "000 0 0")
    if [ "$code" != 200 ] || [ "$(cat "$state/verify.body")" != ok ]; then
        die "$1 does not answer 200 \"ok\" with the session (got $code: $(head -c 200 "$state/verify.body"))"
    fi
    resp_size=$((hdr + body))
}
# refuse NAME PORT HOST: without the session cookie the target must not serve the upstream.
refuse() {
    local code
    code="$(curl -s --max-time 5 -H "Host: $3" -H 'Accept:' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/" || true)"
    case "$code" in 401|302|303|403) ;; *) die "$1 answers $code without a session: it does not enforce sign-in" ;; esac
}
declare -A expected_size
for t in "${targets[@]}"; do
    IFS='|' read -r name port host cookie <<<"$t"
    verify "$name" "$port" "$host" "$cookie"
    expected_size[$name]=$resp_size
    if [ -n "$cookie" ]; then refuse "$name" "$port" "$host"; fi
done
log "all targets answer 200 \"ok\" with their session, and refuse requests without one"

mkdir -p "$state/wrk"
rounds_file="$state/rounds.jsonl"
: >"$rounds_file"

run_wrk() { # name port host cookie dur out
    local args=(-t"$threads" -c"$connections" -d"$5" --latency -s "$root/bench/report.lua" -H "Host: $3")
    [ -n "$4" ] && args+=(-H "Cookie: $4")
    wrk "${args[@]}" "http://127.0.0.1:$2/" >"$6" 2>&1 || { cat "$6" >&2; die "wrk failed against $1"; }
}

log "warm-up: $warmup per target"
for t in "${targets[@]}"; do
    IFS='|' read -r name port host cookie <<<"$t"
    run_wrk "$name" "$port" "$host" "$cookie" "$warmup" "$state/wrk/warmup-$name.txt"
done

n="${#targets[@]}"
# Round r runs target m*(i + r - 1) mod n at position i, with a step m coprime to n that changes
# from round to round. A plain rotation (m = 1 always) would keep every target right after the
# same neighbour in every round (Apache before Portcullis, each time); stepping by m changes the
# first target and every target's predecessor.
steps=()
for m in $(seq 1 $((n - 1))); do
    a=$m b=$n; while [ "$b" -ne 0 ]; do t=$b; b=$((a % b)); a=$t; done   # gcd(m, n)
    [ "$a" -eq 1 ] && steps+=("$m")
done
[ "${#steps[@]}" -gt 0 ] || steps=(1)
for r in $(seq 1 "$rounds"); do
    m="${steps[$(( (r - 1) % ${#steps[@]} ))]}"
    for i in $(seq 0 $((n - 1))); do
        t="${targets[$(( m * (i + r - 1) % n ))]}"
        IFS='|' read -r name port host cookie <<<"$t"
        # A moment of quiet, so that no run starts while the previous target is still closing
        # its 64 connections or settling after the load.
        sleep "$pause"
        out="$state/wrk/round$r-$name.txt"
        load="$(cut -d' ' -f1 /proc/loadavg)"
        python3 bench/cpu.py snapshot "$state/cpu.before" $$ "${pgids[@]}"
        run_wrk "$name" "$port" "$host" "$cookie" "$duration" "$out"
        python3 bench/cpu.py snapshot "$state/cpu.after" $$ "${pgids[@]}"
        cpu="$(python3 bench/cpu.py delta "$state/cpu.before" "$state/cpu.after")"
        verify "$name" "$port" "$host" "$cookie"   # the session still works after the load
        line="$(sed -n 's/^BENCHJSON //p' "$out")"
        [ -n "$line" ] || die "no result from wrk for $name (output: $out)"
        printf '{"round":%d,"target":"%s","loadavg1_before":%s,"response_bytes":%d,"cpu":%s,"wrk":%s}\n' \
            "$r" "$name" "$load" "${expected_size[$name]}" "$cpu" "$line" >>"$rounds_file"
        log "round $r/$rounds $name: $(python3 -c 'import json,sys; w=json.loads(sys.argv[1]); c=json.loads(sys.argv[2]); print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %s; CPU busy %.0f%%, other processes %.0f%%, steal %.0f%%" % (w["requests"]/(w["duration_us"]/1e6), w["p50_us"]/1e3, w["p99_us"]/1e3, sum(w["errors"].values()), c["busy_pct"], c["other_pct"], c.get("steal_pct", 0)))' "$line" "$cpu")"
    done
done

# --- 6. memory ----------------------------------------------------------------------------------
rss_kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }
rss_pc_hwm="$(rss_kb "${pid[portcullis]}" VmHWM)"; rss_pc_now="$(rss_kb "${pid[portcullis]}" VmRSS)"
rss_pcn_hwm="$(rss_kb "${pid[pc-nocache]}" VmHWM)"; rss_pcn_now="$(rss_kb "${pid[pc-nocache]}" VmRSS)"

# --- 7. report ----------------------------------------------------------------------------------
export BENCH_ROUNDS_N="$rounds" BENCH_DURATION_S="$duration" BENCH_WARMUP_S="$warmup" BENCH_PAUSE_S="$pause" \
    BENCH_THREADS_N="$threads" BENCH_CONNECTIONS_N="$connections" BENCH_PROXY_WORKERS="$proxy_workers" \
    BENCH_NATS_SERVER="$nats_server" BENCH_DECISION_CACHE_KNOWN="$decision_cache_known" \
    BENCH_RSS="portcullis:${rss_pc_hwm:-0}:${rss_pc_now:-0},portcullis-nocache:${rss_pcn_hwm:-0}:${rss_pcn_now:-0}"
report_args=(--rounds "$rounds_file" --out "$results/latest")
[ "${BENCH_STRICT:-0}" = 1 ] && report_args+=(--strict)
python3 bench/report.py "${report_args[@]}"
