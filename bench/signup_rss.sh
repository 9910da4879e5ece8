#!/usr/bin/env bash
# Sign-up memory benchmark (not a test). Usage: bench/signup_rss.sh [total] [concurrency] [idle-seconds]
#
# Builds the release server (or uses $AGENTMARKET_BIN), starts it on a fresh SQLite file with the
# sign-up and general rate limits lifted, fires TOTAL account sign-ups (default 400) from
# CONCURRENCY clients (default 64), and prints the server's RSS (from /proc) before the burst, the
# highest sampled during it, at its end, and after IDLE seconds idle (default 5), plus sign-ups/s.
# Each sign-up hashes a password with Argon2id, which is what this measures.
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL="${1:-400}"
CONC="${2:-64}"
IDLE="${3:-5}"
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
    --signup-limit-per-hour 100000 --rate-general-per-minute 1000000 \
    --sweep-interval-secs 0 --webhook-interval-ms 0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "server $SERVER on $(nproc) cores"
python3 bench/signup_rss.py "http://127.0.0.1:$port" "$SERVER_PID" "$TOTAL" "$CONC" "$IDLE"
