#!/usr/bin/env bash
# Discovery benchmark (not a test). Usage: bench/discovery.sh [agents] [seconds per request]
#
# For SQLite and PostgreSQL: seeds 1,000 and then [agents] (default 1,000,000) agents straight
# into a migrated database (bench/discovery_seed.py; COPY on PostgreSQL), starts the release
# server on it and keeps 32 connections busy on each request shape for S seconds (default 8)
# with bench/loadgen's discovery-loadgen, printing p50/p99 and requests/s at both sizes and the
# ratio. Then agent registration throughput (16 connections, fresh database) with this build and
# with the build of BEFORE_REV (default: the merge base with main; BEFORE_REV=skip to skip).
# REGISTER_ONLY=1 measures registration alone; ENGINES=postgres (or sqlite) runs one engine.
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS="${1:-1000000}"
SECS="${2:-8}"
CONNS=32
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agentmarket-target}"
BEFORE_REV="${BEFORE_REV:-$(git merge-base HEAD main 2>/dev/null || echo skip)}"

echo "building release binaries…"
cargo build --release --quiet
cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml
WORK="$(mktemp -d)"
cp "$CARGO_TARGET_DIR/release/agentmarket" "$WORK/agentmarket-after"
SERVER="$WORK/agentmarket-after"
LOADGEN="$CARGO_TARGET_DIR/release/discovery-loadgen"
SERVER_PID=""
PG_DBS=()
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    for db in "${PG_DBS[@]}"; do psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
    [ -d "$WORK/before-src" ] && git worktree remove --force "$WORK/before-src" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_server() { # binary url → sets PORT, SERVER_PID
    local bin="$1" url="$2"
    PORT="$(free_port)"
    AGENTMARKET_LOG=warn "$bin" serve --bind "127.0.0.1:$PORT" --database-url "$url" \
        --register-limit-per-hour 1000000000 --signup-limit-per-hour 1000000 \
        --rate-general-per-minute 1000000000 --rate-financial-per-minute 1000000000 \
        --db-max-connections "$((CONNS + 4))" --sweep-interval-secs 0 >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
    echo "server did not start"; tail -n 20 "$WORK/server.log"; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; }

new_db() { # engine n → prints the database URL, migrated
    local engine="$1" n="$2"
    if [ "$engine" = sqlite ]; then
        echo "sqlite://$WORK/agents-$n.db?mode=rwc"
    else
        local name="agentmarket_disc_$$_$n"
        psql "$PG/postgres" -qc "CREATE DATABASE $name" >/dev/null
        echo "$PG/$name"
    fi
}

seed() { # engine url n
    local engine="$1" url="$2" n="$3" t0
    "$SERVER" --database-url "$url" migrate >/dev/null
    t0=$(date +%s)
    if [ "$engine" = sqlite ]; then
        local file="${url#sqlite://}"; file="${file%%\?*}"
        python3 bench/discovery_seed.py sqlite "$file" "$n"
        python3 - "$file" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
with db:
    db.execute("DELETE FROM capability_summary")
    db.execute("INSERT INTO capability_summary SELECT capability, 0, COUNT(*), SUM(base_price / 100000000), SUM(base_price % 100000000) FROM agent_capabilities GROUP BY capability")
    db.execute("DELETE FROM active_agent_count")
    db.execute("INSERT INTO active_agent_count SELECT 0, COUNT(*) FROM agents WHERE status = 'active'")
db.execute("ANALYZE")
db.close()
PY
    else
        # The search column and its words table are rebuilt by migrate below (the words' update
        # trigger depends on the column).
        psql "$url" -qc "DROP FUNCTION IF EXISTS agent_words_sync() CASCADE; DROP TABLE IF EXISTS agent_words; ALTER TABLE agents DROP COLUMN search" >/dev/null
        python3 bench/discovery_seed.py pg-agents "$n" | psql "$url" -qc "\copy agents (id, did, name, description, capabilities, pricing_model, base_price, metadata, status, reputation_centi, tasks_completed, has_callback, last_seen_at, created_at, updated_at) FROM STDIN WITH (FORMAT csv)"
        python3 bench/discovery_seed.py pg-listing "$n" | psql "$url" -qc "\copy agent_capabilities (agent_id, capability, base_price, reputation_centi, tasks_completed, created_at, has_callback, last_seen_at) FROM STDIN WITH (FORMAT csv)"
        psql "$url" -q >/dev/null <<'SQL'
DELETE FROM capability_summary;
INSERT INTO capability_summary SELECT capability, 0, COUNT(*), SUM(base_price / 100000000), SUM(base_price % 100000000) FROM agent_capabilities GROUP BY capability;
DELETE FROM active_agent_count;
INSERT INTO active_agent_count SELECT 0, COUNT(*) FROM agents WHERE status = 'active';
VACUUM ANALYZE;
SQL
    fi
    "$SERVER" --database-url "$url" migrate >/dev/null # the search index, in one pass
    # Adding the search column rewrote the table: VACUUM again, or the visibility map is empty and
    # every index-only scan (the capped counts) visits the heap, as no steady-state table does.
    [ "$engine" = postgres ] && psql "$url" -qc "VACUUM ANALYZE agents" -qc "VACUUM ANALYZE agent_words" >/dev/null
    echo "  seeded $n agents in $(( $(date +%s) - t0 ))s"
}

# The request shapes: label|path. The deep page's cursor is fetched once (through an offset).
SHAPES=(
    "discover cap|/api/v1/agents/discover?capability=code-review&limit=20"
    "discover cap sort=reputation|/api/v1/agents/discover?capability=code-review&sort_by=reputation_score&limit=20"
    "discover cap sort=base_price|/api/v1/agents/discover?capability=code-review&sort_by=base_price&limit=20"
    "discover cap sort=recent|/api/v1/agents/discover?capability=code-review&sort_by=recent&limit=20"
    "discover cap sort=availability|/api/v1/agents/discover?capability=code-review&sort_by=availability&limit=20"
    "discover price 10-20|/api/v1/agents/discover?min_price=10&max_price=20&sort_by=base_price&limit=20"
    "discover min_reputation=4.5|/api/v1/agents/discover?min_reputation=4.5&limit=20"
    "discover cap+price+rep|/api/v1/agents/discover?capability=code-review&min_price=5&max_price=50&min_reputation=3&limit=20"
    "discover q=<topic word>|/api/v1/agents/discover?q=$(python3 -c 'import sys; sys.path.insert(0, "bench"); from discovery_seed import topic_word; print(topic_word(7))')&limit=20"
    "agents first page|/api/v1/agents?limit=20"
    "agents cap first page|/api/v1/agents?capability=code-review&limit=20"
    "agents deep page (cursor)|DEEP"
    "capabilities|/api/v1/capabilities"
)

declare -A RESULT
run_shapes() { # engine n
    local engine="$1" n="$2" url deep
    url="$(new_db "$engine" "$n")"
    [ "$engine" = postgres ] && PG_DBS+=("${url##*/}")
    seed "$engine" "$url" "$n"
    start_server "$SERVER" "$url"
    deep="$(curl -fs "http://127.0.0.1:$PORT/api/v1/agents?limit=1&offset=$(( n * 9 / 10 ))" | python3 -c 'import json,sys; print(json.load(sys.stdin)["meta"]["pagination"]["cursor"])')"
    for shape in "${SHAPES[@]}"; do
        local label="${shape%%|*}" path="${shape#*|}"
        [ "$path" = DEEP ] && path="/api/v1/agents?limit=20&cursor=$deep"
        "$LOADGEN" --base "http://127.0.0.1:$PORT" --path "$path" --connections 2 --seconds 1 >/dev/null # warm-up
        RESULT["$engine|$n|$label"]="$("$LOADGEN" --base "http://127.0.0.1:$PORT" --path "$path" --connections "$CONNS" --seconds "$SECS" --label x | cut -f3-6)"
        echo "  $engine n=$n $label: ${RESULT["$engine|$n|$label"]}"
    done
    stop_server
}

register_rate() { # binary engine label
    local bin="$1" engine="$2" url
    url="$(new_db "$engine" "reg_$3")"
    [ "$engine" = postgres ] && PG_DBS+=("${url##*/}")
    "$bin" --database-url "$url" migrate >/dev/null
    start_server "$bin" "$url"
    "$LOADGEN" --base "http://127.0.0.1:$PORT" --register --connections 16 --seconds 3 >/dev/null # warm-up
    REG["$engine|$3"]="$("$LOADGEN" --base "http://127.0.0.1:$PORT" --register --connections 16 --seconds "$SECS" | cut -f3-6)"
    echo "  register $engine $3: ${REG["$engine|$3"]}"
    stop_server
}

ENGINES="${ENGINES:-sqlite postgres}"
for engine in $ENGINES; do
    [ -n "${REGISTER_ONLY:-}" ] && break
    for n in 1000 "$AGENTS"; do
        echo "== $engine, $n agents"
        run_shapes "$engine" "$n"
    done
done

declare -A REG
echo "== registration throughput (16 connections, ${SECS}s, fresh database)"
if [ "$BEFORE_REV" != skip ]; then
    git worktree add --detach "$WORK/before-src" "$BEFORE_REV" >/dev/null 2>&1
    (cd "$WORK/before-src" && cargo build --release --quiet)
    cp "$CARGO_TARGET_DIR/release/agentmarket" "$WORK/agentmarket-before"
    cargo build --release --quiet # the target dir's binary back to this checkout
fi
for engine in $ENGINES; do
    [ "$BEFORE_REV" != skip ] && register_rate "$WORK/agentmarket-before" "$engine" before
    register_rate "$SERVER" "$engine" after
done

[ -z "${REGISTER_ONLY:-}" ] && {
echo
echo "## Discovery at $AGENTS agents vs 1,000 agents ($CONNS connections, ${SECS}s each; req/s, p50 ms, p99 ms, errors)"
echo
printf '| %-32s | %-8s | %-33s | %-33s | %-9s |\n' request engine "1,000 agents: req/s p50 p99 err" "$AGENTS agents: req/s p50 p99 err" "tput ratio"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "----------" "$(printf -- '-%.0s' {1..35})" "$(printf -- '-%.0s' {1..35})" "-----------"
for shape in "${SHAPES[@]}"; do
    label="${shape%%|*}"
    for engine in $ENGINES; do
        small="${RESULT["$engine|1000|$label"]}"; big="${RESULT["$engine|$AGENTS|$label"]}"
        ratio="$(python3 -c "import sys; a=float(sys.argv[1].split()[0]); b=float(sys.argv[2].split()[0]); print(f'{a/b:.2f}x' if b else 'inf')" "$small" "$big")"
        printf '| %-32s | %-8s | %-33s | %-33s | %-9s |\n' "$label" "$engine" "$(echo $small)" "$(echo $big)" "$ratio"
    done
done
}
echo
echo "## Registration (16 connections, ${SECS}s, fresh database; req/s, p50 ms, p99 ms, errors)"
for engine in $ENGINES; do
    echo "$engine: before ($BEFORE_REV) ${REG["$engine|before"]:-skipped} | after ${REG["$engine|after"]}"
done
