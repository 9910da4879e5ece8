#!/usr/bin/env python3
"""Slow-client attack on a running agentmarket server (a benchmark, not a test).

Opens connections of three kinds and watches when the server closes them, while probing
`GET /healthz` on a fresh connection every second:

  silent     connects and sends nothing;
  slow       sends a request head one byte per --trickle-every seconds, never finishing it;
  keepalive  sends `GET /healthz`, reads the answer, then sits idle in keep-alive.

Prints, per kind, how many were served and closed by the server and after how long (from the
connect, or for keep-alive from the end of the response), how many are still open when the
observation ends, and how /healthz fared meanwhile.

    bench/slowloris.py --port 8080 --silent 300 --slow 300 --keepalive 300 --observe 75
"""

import argparse
import asyncio
import resource
import statistics
import time

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: bench\r\nX-Slow: " + b"a" * 100_000


async def read_response(reader):
    """Reads one response framed by content-length; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return int(lines[0].split(" ")[1])


async def until_closed(reader):
    while await reader.read(4096):
        pass


async def trickle(writer, every):
    try:
        for i in range(len(SLOW_HEAD)):
            writer.write(SLOW_HEAD[i : i + 1])
            await writer.drain()
            await asyncio.sleep(every)
    except (OSError, ConnectionError):
        pass


class Outcome:
    def __init__(self, kind):
        self.kind = kind
        self.connected = False
        self.served = None  # keep-alive: got its first response
        self.closed_after = None  # seconds, when the server closed it
        self.error = None


async def hold(kind, args, deadline, connect_gate):
    out = Outcome(kind)
    async with connect_gate:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), args.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            out.error = f"connect: {type(e).__name__}"
            return out
    out.connected = True
    started = time.monotonic()
    trickler = None
    try:
        if kind == "keepalive":
            writer.write(HEALTHZ)
            await writer.drain()
            try:
                status = await asyncio.wait_for(read_response(reader), args.response_timeout)
                out.served = status == 200
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError):
                out.served = False
                out.error = "no response"
            started = time.monotonic()
        elif kind == "slow":
            trickler = asyncio.create_task(trickle(writer, args.trickle_every))
        try:
            await asyncio.wait_for(until_closed(reader), max(0.0, deadline - time.monotonic()))
            out.closed_after = time.monotonic() - started
        except asyncio.TimeoutError:
            pass
        except OSError:
            out.closed_after = time.monotonic() - started
    finally:
        if trickler:
            trickler.cancel()
        writer.close()
    return out


async def probe(args, deadline, results):
    while time.monotonic() < deadline:
        began = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), 2)
            writer.write(HEALTHZ)
            await writer.drain()
            status = await asyncio.wait_for(read_response(reader), 2)
            writer.close()
            results.append(time.monotonic() - began if status == 200 else None)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            results.append(None)
        await asyncio.sleep(max(0.0, 1 - (time.monotonic() - began)))


def summary(kind, outcomes, observe):
    if not outcomes:
        return
    connected = [o for o in outcomes if o.connected]
    closed = sorted(o.closed_after for o in connected if o.closed_after is not None)
    still_open = len(connected) - len(closed)
    line = f"{kind:<10} {len(outcomes)} opened"
    if len(connected) < len(outcomes):
        line += f" ({len(outcomes) - len(connected)} could not connect)"
    if kind == "keepalive":
        line += f", {sum(1 for o in connected if o.served)} served"
    if closed:
        line += (
            f"; {len(closed)} closed by the server after {statistics.median(closed):.1f} s median"
            f" (min {closed[0]:.1f}, max {closed[-1]:.1f})"
        )
    else:
        line += "; none closed by the server"
    line += f"; {still_open} still open at {observe:.0f} s"
    print(line)


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--silent", type=int, default=0)
    p.add_argument("--slow", type=int, default=0)
    p.add_argument("--keepalive", type=int, default=0)
    p.add_argument("--observe", type=float, default=75, help="seconds to watch the connections")
    p.add_argument("--trickle-every", type=float, default=1.0, help="seconds between bytes of a slow head")
    p.add_argument("--connect-timeout", type=float, default=5)
    p.add_argument("--response-timeout", type=float, default=5)
    args = p.parse_args()

    want = args.silent + args.slow + args.keepalive + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    began = time.monotonic()
    deadline = began + args.observe
    gate = asyncio.Semaphore(200)  # connects in flight at once
    kinds = ["silent"] * args.silent + ["slow"] * args.slow + ["keepalive"] * args.keepalive
    probes = []
    prober = asyncio.create_task(probe(args, deadline, probes))
    outcomes = await asyncio.gather(*(hold(kind, args, deadline, gate) for kind in kinds))
    await prober

    print(
        f"server {args.host}:{args.port}: {args.silent} silent, {args.slow} slow (a head byte every "
        f"{args.trickle_every:g} s), {args.keepalive} keep-alive; watched for {args.observe:.0f} s"
    )
    for kind in ("silent", "slow", "keepalive"):
        summary(kind, [o for o in outcomes if o.kind == kind], args.observe)
    ok = sorted(x for x in probes if x is not None)
    line = f"/healthz   {len(ok)}/{len(probes)} probes answered within 2 s"
    if ok:
        line += f", median {ok[len(ok) // 2] * 1000:.0f} ms, max {ok[-1] * 1000:.0f} ms"
    print(line)


if __name__ == "__main__":
    asyncio.run(main())
