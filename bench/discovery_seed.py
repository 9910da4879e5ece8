#!/usr/bin/env python3
"""Seeds N agents straight into a migrated agentmarket database (benchmark only, not a test).

Usage: discovery_seed.py sqlite PATH N      (writes the file directly)
       discovery_seed.py pg-agents N        (CSV for COPY agents on stdout)
       discovery_seed.py pg-listing N       (CSV for COPY agent_capabilities on stdout)

The same deterministic agents on both engines: ~95 % active; 1-3 capabilities out of cap00..cap99
plus `code-review` for 10 % of agents; prices 0.01-500.00; reputation 0-5; a fifth with a
callback; half seen recently. Names are "<adjective> <noun> <n>", descriptions name two of 1,024
topic words, so a topic word matches ~0.2 % of agents (the `q` benchmark's word is `topic_word(7)`).
The counters (`capability_summary`, `active_agent_count`) are rebuilt by the caller with SQL, and
the search index by `agentmarket migrate` (it is dropped before seeding).
"""
import csv
import json
import random
import sys

ADJ = "quick careful polyglot senior junior tireless precise friendly rapid thorough".split()
NOUN = "reviewer translator painter analyst auditor writer tester planner coder helper".split()
SYL = "ka lo mi ne ru sa te vo ba di fu go hi ju ke la ma no pe qi ra si tu va we xo yu za bo ce de fa".split()
BASE_MS = 1_760_000_000_000


def topic_word(k):
    return SYL[k // 32] + SYL[k % 32] + "n"


def agents(n):
    rng = random.Random(42)
    for i in range(n):
        caps = sorted({f"cap{rng.randrange(100):02d}" for _ in range(rng.randint(1, 3))})
        if rng.random() < 0.10:
            caps = sorted(set(caps) | {"code-review"})
        callback = rng.random() < 0.2
        seen = BASE_MS + rng.randrange(86_400_000) if rng.random() < 0.5 else None
        yield {
            "id": f"b0000000-0000-7000-8000-{i:012d}",
            "did": f"did:bench:{i}",
            "name": f"{rng.choice(ADJ)} {rng.choice(NOUN)} {i}",
            "description": f"Handles {topic_word(rng.randrange(1024))} and {topic_word(rng.randrange(1024))} work",
            "capabilities": json.dumps(caps),
            "base_price": rng.randint(1, 50_000) * 1_000_000,
            "metadata": json.dumps({"callback_url": "https://agent.example.com/hook"}) if callback else "{}",
            "status": "active" if rng.random() < 0.95 else "draft",
            "reputation_centi": rng.randint(0, 500),
            "tasks_completed": rng.randint(0, 1000),
            "has_callback": 1 if callback else 0,
            "last_seen_at": seen,
            "created_at": BASE_MS + i * 10,
        }


AGENT_COLUMNS = ("id", "did", "name", "description", "capabilities", "pricing_model", "base_price", "metadata",
                 "status", "reputation_centi", "tasks_completed", "has_callback", "last_seen_at", "created_at",
                 "updated_at")
LISTING_COLUMNS = ("agent_id", "capability", "base_price", "reputation_centi", "tasks_completed", "created_at",
                   "has_callback", "last_seen_at")


def agent_row(a):
    return (a["id"], a["did"], a["name"], a["description"], a["capabilities"], "fixed", a["base_price"],
            a["metadata"], a["status"], a["reputation_centi"], a["tasks_completed"], a["has_callback"],
            a["last_seen_at"], a["created_at"], a["created_at"])


def listing_rows(a):
    if a["status"] != "active":
        return
    for cap in json.loads(a["capabilities"]):
        yield (a["id"], cap, a["base_price"], a["reputation_centi"], a["tasks_completed"], a["created_at"],
               a["has_callback"], a["last_seen_at"] or 0)


def seed_sqlite(path, n):
    import sqlite3
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous = OFF")
    # The search index is dropped and rebuilt in one pass by the server's next `migrate`
    # (agents::search::ensure): far faster than a trigger per row.
    with db:
        for statement in ("DROP TRIGGER IF EXISTS agents_search_insert", "DROP TRIGGER IF EXISTS agents_search_update",
                          "DROP TRIGGER IF EXISTS agents_search_relist",
                          "DROP TRIGGER IF EXISTS agents_search_delete", "DROP TABLE IF EXISTS agents_search",
                          "DROP TABLE IF EXISTS agent_search_ids"):
            db.execute(statement)
    with db:
        batch, listing = [], []
        insert_agent = f"INSERT INTO agents ({', '.join(AGENT_COLUMNS)}) VALUES ({', '.join('?' * len(AGENT_COLUMNS))})"
        insert_listing = (f"INSERT INTO agent_capabilities ({', '.join(LISTING_COLUMNS)}) "
                          f"VALUES ({', '.join('?' * len(LISTING_COLUMNS))})")
        for a in agents(n):
            batch.append(agent_row(a))
            listing.extend(listing_rows(a))
            if len(batch) >= 20_000:
                db.executemany(insert_agent, batch)
                db.executemany(insert_listing, listing)
                batch, listing = [], []
        db.executemany(insert_agent, batch)
        db.executemany(insert_listing, listing)
    db.close()


def main():
    mode = sys.argv[1]
    if mode == "sqlite":
        seed_sqlite(sys.argv[2], int(sys.argv[3]))
        return
    n = int(sys.argv[2])
    out = csv.writer(sys.stdout, lineterminator="\n")
    for a in agents(n):
        if mode == "pg-agents":
            out.writerow(["" if v is None else v for v in agent_row(a)])
        elif mode == "pg-listing":
            out.writerows(listing_rows(a))
        else:
            raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
