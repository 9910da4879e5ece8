#!/usr/bin/env bash
# Ledger audit timing (not a test). Usage: bench/audit.sh [postings]  (default 1,000,000)
#
# Seeds a balanced ledger straight into SQLite and PostgreSQL — deposits of 1.00 from the world
# account to 10,000 user accounts, two postings per entry, balances equal to the postings — then
# times `agentmarket admin audit` (every invariant over every posting) on each engine. The audit is
# linear in postings (grouped scans), so the time at 10 million is about ten times the time at one
# million. Task-linked entries also join tasks in invariant 3; this ledger has none.
set -euo pipefail
cd "$(dirname "$0")/.."

POSTINGS="${1:-1000000}"
ENTRIES=$((POSTINGS / 2))
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agentmarket-target}"
# AGENTMARKET_BIN: an already built binary (the audit itself is what is timed).
if [ -n "${AGENTMARKET_BIN:-}" ]; then
    SERVER="$AGENTMARKET_BIN"
else
    cargo build --release --quiet
    SERVER="$CARGO_TARGET_DIR/release/agentmarket"
fi
WORK="$(mktemp -d)"
DB="agentmarket_audit_$$"
cleanup() {
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

seed_sql() { # series-expression prefix → SQL for one engine
    local series="$1"
    cat <<SQL
INSERT INTO ledger_accounts (id, owner_kind, owner_id, purpose, balance, allow_negative, created_at)
    VALUES ('bench-world', 'system', 'bench', 'world', 0, 1, 0);
INSERT INTO ledger_accounts (id, owner_kind, owner_id, purpose, balance, allow_negative, created_at)
    SELECT 'bench-acct-' || g, 'user', 'bench-user-' || g, 'available', 0, 0, 0 FROM $series(1, 10000) g;
INSERT INTO journal_entries (id, kind, reference, task_id, memo, created_at)
    SELECT 'bench-e-' || g, 'deposit', 'bench-r-' || g, NULL, NULL, g FROM $series(1, $ENTRIES) g;
INSERT INTO postings (id, entry_id, account_id, amount, created_at)
    SELECT 'bench-pa-' || g, 'bench-e-' || g, 'bench-world', -100000000, g FROM $series(1, $ENTRIES) g;
INSERT INTO postings (id, entry_id, account_id, amount, created_at)
    SELECT 'bench-pb-' || g, 'bench-e-' || g, 'bench-acct-' || (g % 10000 + 1), 100000000, g FROM $series(1, $ENTRIES) g;
UPDATE ledger_accounts SET balance = (SELECT COALESCE(SUM(amount), 0) FROM postings p WHERE p.account_id = ledger_accounts.id)
    WHERE id LIKE 'bench-%';
SQL
}

time_audit() { # label url
    local t0 t1
    t0=$(date +%s.%N)
    "$SERVER" --database-url "$2" admin audit | tail -n 1
    t1=$(date +%s.%N)
    python3 -c "import sys; t=float(sys.argv[2])-float(sys.argv[1]); print(f'$1: full audit of $POSTINGS postings in {t:.2f} s (process start included); 10 million ≈ {t*10000000/$POSTINGS:.0f} s by linear extrapolation')" "$t0" "$t1"
}

SQLITE_URL="sqlite://$WORK/audit.db?mode=rwc"
"$SERVER" --database-url "$SQLITE_URL" migrate >/dev/null
# SQLite has no generate_series here: a recursive CTE stands in for it.
python3 - "$WORK/audit.db" "$(seed_sql series)" <<'PY'
import re, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
sql = sys.argv[2]
# "FROM series(1, N) g" -> a recursive CTE producing g.
def cte(m):
    lo, hi = m.group(1), m.group(2)
    return f"FROM (WITH RECURSIVE s(g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM s WHERE g < {hi}) SELECT g FROM s)"
sql = re.sub(r"FROM series\((\d+), (\d+)\) g", cte, sql)
with db:
    db.executescript(sql)
db.execute("ANALYZE")
db.close()
PY
time_audit sqlite "$SQLITE_URL"

psql "$PG/postgres" -qc "CREATE DATABASE $DB" >/dev/null
"$SERVER" --database-url "$PG/$DB" migrate >/dev/null
seed_sql generate_series | psql "$PG/$DB" -q >/dev/null
psql "$PG/$DB" -qc "VACUUM ANALYZE" >/dev/null
time_audit postgres "$PG/$DB"
