#!/usr/bin/env bash
# Escrow benchmark (not a test). Usage: bench/escrow.sh [clients] [seconds]
#
# Builds the release server and the load generator, then for SQLite and for PostgreSQL starts a
# server on a fresh database and runs full escrow cycles (create with balance payment → claim →
# complete → accept) from N concurrent clients, printing money-moving requests/s and p50/p99.
# On PostgreSQL it also runs pgbench's TPC-B-like script with the same client count against the
# same PostgreSQL server and prints the ratio. Then, on each engine, the same public read
# (GET /agents/:id) with and without an API key: what authentication costs. Needs PostgreSQL on
# 127.0.0.1:5432 (user postgres).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS="${1:-16}"
SECONDS_PER_RUN="${2:-20}"
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agentmarket-target}"
PGBIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"

echo "building release binaries…"
cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml
SERVER="$CARGO_TARGET_DIR/release/agentmarket"
LOADGEN="$CARGO_TARGET_DIR/release/escrow-loadgen"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# CPU seconds (user + system) a set of processes has used, from /proc.
ticks() {
    local t=0 p
    for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}

# Where the CPU goes: the server's, the database backends' (PostgreSQL) and the load
# generator's CPU time per escrow cycle, sampled from 3 s into the run (after seeding) to 1 s
# before its end, and the engine's mean batch size over the run.
cpu_profile() {
    local label="$1" loadgen="$2" dbname="$3" port="$4" backends=""
    sleep 3
    [ -n "$dbname" ] && backends=$(psql "$PG/postgres" -Atc "SELECT pid FROM pg_stat_activity WHERE datname = '$dbname'")
    local s0 b0 l0 r0 t0 s1 b1 l1 r1 t1
    s0=$(ticks "$SERVER_PID"); b0=$(ticks $backends); l0=$(ticks "$loadgen"); r0=$(released "$label"); t0=$(date +%s.%N)
    sleep $((SECONDS_PER_RUN - 4))
    s1=$(ticks "$SERVER_PID"); b1=$(ticks $backends); l1=$(ticks "$loadgen"); r1=$(released "$label"); t1=$(date +%s.%N)
    local batches
    batches=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^agentmarket_engine_batch_size_(sum|count)/ {print $2}' | tr '\n' ' ')
    python3 - "$s0" "$s1" "$b0" "$b1" "$l0" "$l1" "$r0" "$r1" "$(getconf CLK_TCK)" $batches <<'PY'
import sys
s0, s1, b0, b1, l0, l1, r0, r1, hz = map(float, sys.argv[1:10])
cycles = max(1.0, r1 - r0)
per = lambda a, b: (b - a) / hz * 1000 / cycles
print(f"cpu_ms_per_cycle server={per(s0, s1):.3f} database={per(b0, b1):.3f} loadgen={per(l0, l1):.3f} (over {cycles:.0f} cycles)")
if len(sys.argv) > 11:
    print(f"engine_mean_batch={float(sys.argv[10]) / max(1.0, float(sys.argv[11])):.1f} commands")
PY
}

# Escrow cycles settled so far (released tasks), from the database.
released() {
    if [ "$1" = postgres ]; then
        psql "$PG/$DB" -Atc "SELECT count(*) FROM tasks WHERE payment_status = 'released'"
    else
        python3 -c "import sqlite3; print(sqlite3.connect('file:$WORK/bench.db?mode=ro', uri=True).execute(\"SELECT count(*) FROM tasks WHERE payment_status = 'released'\").fetchone()[0])"
    fi
}

run_engine() {
    local label="$1" url="$2" conns="$3" dbname="${4:-}"
    local port; port="$(free_port)"
    AGENTMARKET_LOG=warn "$SERVER" serve --bind "127.0.0.1:$port" --database-url "$url" \
        --enable-sandbox-deposits --register-limit-per-hour 1000000 --signup-limit-per-hour 1000000 \
        --rate-general-per-minute 100000000 --rate-financial-per-minute 100000000 \
        --db-max-connections "$conns" --sweep-interval-secs 0 >"$WORK/$label.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    echo
    echo "== $label ($CLIENTS clients, ${SECONDS_PER_RUN}s)"
    "$LOADGEN" --base "http://127.0.0.1:$port" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" > "$WORK/$label.out" &
    local loadgen=$!
    cpu_profile "$label" "$loadgen" "$dbname" "$port" > "$WORK/$label.cpu" &
    local profiler=$!
    wait "$loadgen"
    wait "$profiler"
    cat "$WORK/$label.out" "$WORK/$label.cpu"
    echo "-- $label reads, with and without a key (${SECONDS_PER_RUN}s in all)"
    "$LOADGEN" --mode get --base "http://127.0.0.1:$port" --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN" | tee "$WORK/$label-get.out"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

run_engine sqlite "sqlite://$WORK/bench.db?mode=rwc" 8

DB="agentmarket_bench_$$"
psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
run_engine postgres "$PG/$DB" $((CLIENTS + 4)) "$DB"
psql "$PG/postgres" -qc "DROP DATABASE $DB WITH (FORCE)" >/dev/null

echo
echo "== pgbench tpcb-like ($CLIENTS clients, ${SECONDS_PER_RUN}s, scale $CLIENTS)"
PGB="pgbench_$$"
psql "$PG/postgres" -qc "CREATE DATABASE $PGB" >/dev/null
"$PGBIN/pgbench" -q -i -s "$CLIENTS" "$PG/$PGB" >/dev/null 2>&1
"$PGBIN/pgbench" -n -b tpcb-like -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" "$PG/$PGB" | tee "$WORK/pgbench.out" | grep -E "^(tps|latency)"
psql "$PG/postgres" -qc "DROP DATABASE $PGB WITH (FORCE)" >/dev/null

money=$(sed -n 's/^money_moving_requests_per_s=//p' "$WORK/postgres.out")
lite=$(sed -n 's/^money_moving_requests_per_s=//p' "$WORK/sqlite.out")
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out" | head -n1)
auth_pg=$(sed -n 's/^get_authenticated_over_anonymous=//p' "$WORK/postgres-get.out")
auth_lite=$(sed -n 's/^get_authenticated_over_anonymous=//p' "$WORK/sqlite-get.out")
echo
python3 - "$money" "$tps" "$lite" "$auth_pg" "$auth_lite" <<'PY'
import sys
money, tps, lite, auth_pg, auth_lite = map(float, sys.argv[1:])
print(f"PostgreSQL: {money:.1f} money-moving requests/s vs pgbench {tps:.1f} TPC-B tps -> ratio {money / tps:.2f} (goal >= 1.0)")
print(f"SQLite: {lite:.1f} money-moving requests/s -> {lite / money:.2f} x PostgreSQL (goal >= 2)")
print(f"Authenticated GET / anonymous GET: PostgreSQL {auth_pg:.2f}, SQLite {auth_lite:.2f} (goal >= 0.9)")
PY
