#!/usr/bin/env python3
"""Sign-up burst for bench/signup_rss.sh (not a test).

Usage: signup_rss.py BASE_URL SERVER_PID TOTAL CONCURRENCY IDLE_SECONDS

Fires TOTAL `POST /api/v1/accounts/register` from CONCURRENCY threads (one request at a time
each), samples the server's RSS from /proc/PID/status every 50 ms meanwhile, and prints RSS
before the burst, the highest sampled RSS during it, RSS when it ends, and RSS after
IDLE_SECONDS of idleness, plus sign-ups per second. Standard library only.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse
import uuid


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def main():
    base, pid, total, conc, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    u = urllib.parse.urlsplit(base)
    run = uuid.uuid4().hex[:8]
    lock = threading.Lock()
    next_i = [0]
    statuses = {}

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        while True:
            with lock:
                i = next_i[0]
                if i >= total:
                    break
                next_i[0] += 1
            body = json.dumps({"email": f"bench-{run}-{i}@example.com", "password": "correct horse battery staple"})
            try:
                conn.request("POST", "/api/v1/accounts/register", body, {"content-type": "application/json"})
                res = conn.getresponse()
                res.read()
                code = res.status
            except Exception as e:  # count and reconnect
                code = type(e).__name__
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
            with lock:
                statuses[code] = statuses.get(code, 0) + 1
        conn.close()

    peak = [0]
    done = threading.Event()

    def sampler():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.05)

    time.sleep(1.0)
    before = rss_kib(pid)
    s = threading.Thread(target=sampler)
    s.start()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    end = rss_kib(pid)
    done.set()
    s.join()
    peak[0] = max(peak[0], end)
    time.sleep(idle)
    after = rss_kib(pid)
    ok = statuses.get(201, 0)
    print(f"sign-ups: {total} at {conc} concurrent, statuses {dict(sorted(statuses.items(), key=str))}")
    print(f"throughput: {ok / elapsed:.1f} sign-ups/s ({elapsed:.2f} s)")
    print(f"rss_before_kib={before} ({mib(before)})")
    print(f"rss_peak_kib={peak[0]} ({mib(peak[0])})")
    print(f"rss_end_of_burst_kib={end} ({mib(end)})")
    print(f"rss_idle_after_{idle:g}s_kib={after} ({mib(after)})")
    if ok != total:
        sys.exit(f"only {ok} of {total} sign-ups succeeded")


if __name__ == "__main__":
    main()
