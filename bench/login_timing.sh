#!/usr/bin/env bash
# Dashboard login timing (not a test). Usage: bench/login_timing.sh [rounds]
#
# Builds the release server (or uses $AGENTMARKET_BIN), starts it on a fresh SQLite file with the
# login throttle lifted, and times failed dashboard logins for a known email (wrong password) and
# for an unknown email, interleaved (bench/login_timing.py). Both should cost one Argon2 check.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${1:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agentmarket-target}"
if [ -n "${AGENTMARKET_BIN:-}" ]; then
    SERVER="$AGENTMARKET_BIN"
else
    echo "building the release binary…"
    cargo build --release --quiet
    SERVER="$CARGO_TARGET_DIR/release/agentmarket"
fi
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
AGENTMARKET_LOG=warn "$SERVER" serve --bind "127.0.0.1:$port" --database-url "sqlite://$WORK/bench.db?mode=rwc" \
    --auth-failures-per-minute 1000000 --rate-general-per-minute 1000000 \
    --sweep-interval-secs 0 --webhook-interval-ms 0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "server $SERVER on $(nproc) cores, $ROUNDS rounds"
python3 bench/login_timing.py "http://127.0.0.1:$port" "$ROUNDS"
