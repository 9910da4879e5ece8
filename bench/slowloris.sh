#!/usr/bin/env bash
# Slow-client benchmark (not a test). Usage: bench/slowloris.sh [connections per kind] [seconds]
#
# Builds the release server and, on a fresh SQLite database with the default connection flags,
# runs bench/slowloris.py twice:
#   1. N silent, N slow (a head byte a second) and N keep-alive idle connections (default 300
#      each), watched for S seconds (default 75: past the 10 s header and 60 s idle timeouts);
#   2. descriptor exhaustion: the server limited to 1,024 open files, 1,100 keep-alive clients
#      that each make one request and stay idle, watched for 20 s.
# Both print when the server closed the connections and whether /healthz kept answering.
# SERVER=/path/to/agentmarket runs another build instead (e.g. one built from an older commit).
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-300}"
OBSERVE="${2:-75}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agentmarket-target}"
if [ -z "${SERVER:-}" ]; then
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start <label> <open-file limit or ''>: starts the server on a fresh database, sets PORT.
start() {
    PORT="$(free_port)"
    (
        [ -n "$2" ] && ulimit -n "$2"
        AGENTMARKET_LOG=warn exec "$SERVER" serve --bind "127.0.0.1:$PORT" \
            --database-url "sqlite://$WORK/$1.db?mode=rwc" --sweep-interval-secs 0
    ) >"$WORK/$1.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}

stop() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

echo "== slow and idle clients ($SERVER)"
start slow ''
python3 bench/slowloris.py --port "$PORT" --silent "$N" --slow "$N" --keepalive "$N" --observe "$OBSERVE"
stop

echo
echo "== descriptor exhaustion: open-file limit 1024, 1100 keep-alive clients"
start flood 1024
python3 bench/slowloris.py --port "$PORT" --keepalive 1100 --observe 20
stop
