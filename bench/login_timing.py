#!/usr/bin/env python3
"""Dashboard login timing (not a test): known email with a wrong password vs unknown email.

Usage: login_timing.py BASE_URL [ROUNDS]

Signs up one account through the API, then posts the dashboard login form (with its CSRF
cookie and field) ROUNDS times for each case, interleaved, and prints the median and p90 of
each and their ratio. The server must allow that many failed logins (--auth-failures-per-minute).
Standard library only.
"""
import http.cookiejar
import json
import re
import statistics
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def main():
    base = sys.argv[1].rstrip("/")
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    email = f"timing-{uuid.uuid4().hex[:8]}@example.com"
    req = urllib.request.Request(
        f"{base}/api/v1/accounts/register",
        json.dumps({"email": email, "password": "correct horse battery staple"}).encode(),
        {"content-type": "application/json"},
    )
    urllib.request.urlopen(req).read()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{base}/login").read().decode()

    def csrf(page):
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)

    token = [csrf(page)]

    def attempt(who):
        form = urllib.parse.urlencode({"csrf": token[0], "email": who, "password": "nope nope nope"}).encode()
        t0 = time.perf_counter()
        try:
            opener.open(f"{base}/login", form).read()
            raise SystemExit("a wrong login was accepted")
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            took = time.perf_counter() - t0
            if e.code != 401:
                raise SystemExit(f"login answered {e.code}")
        token[0] = csrf(body)
        return took

    attempt(email), attempt(f"warm-{uuid.uuid4().hex[:8]}@example.com")  # warm up
    known, unknown = [], []
    for i in range(rounds):
        known.append(attempt(email))
        unknown.append(attempt(f"ghost-{i}-{uuid.uuid4().hex[:8]}@example.com"))

    def show(name, xs):
        xs = sorted(xs)
        print(f"{name}: median {statistics.median(xs) * 1000:.2f} ms, p90 {xs[int(len(xs) * 0.9)] * 1000:.2f} ms")

    show("known email, wrong password", known)
    show("unknown email", unknown)
    print(f"ratio unknown/known (medians): {statistics.median(unknown) / statistics.median(known):.2f}")


if __name__ == "__main__":
    main()
