#!/usr/bin/env python3
"""Opens N keep-alive connections to a proxy, sends one request on each (so the proxy really
set the connection up: accepted, parsed, routed, answered) and keeps them all open and idle.

    python3 bench/idle_clients.py --port 8080 --host bench.example.com --count 10000

Prints `READY open=N failed=F seconds=S` once every connection has had its response, then
waits for a line on stdin, prints `CHECK open=N closed=C` (connections the proxy has closed
meanwhile count as closed) and exits, closing everything. At most --concurrency requests are
in flight at once, so the proxies' upstream pools stay small and the memory measured is the
client side's.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time


async def one(host: str, port: int, request: bytes, sem: asyncio.Semaphore, conns: list,
              failures: list) -> None:
    async with sem:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                await asyncio.wait_for(reader.readexactly(length), 30)
            if status != b"200":
                failures.append(f"status {status.decode()}")
                writer.close()
                return
            conns.append((reader, writer))
        except Exception as e:  # noqa: BLE001
            failures.append(repr(e))


async def main_async(args) -> int:
    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
               "User-Agent: portico-bench-idle\r\n\r\n").encode()
    sem = asyncio.Semaphore(args.concurrency)
    conns: list = []
    failures: list[str] = []
    t0 = time.monotonic()
    await asyncio.gather(*(one("127.0.0.1", args.port, request, sem, conns, failures)
                           for _ in range(args.count)))
    print(f"READY open={len(conns)} failed={len(failures)} "
          f"seconds={time.monotonic() - t0:.2f}" +
          (f" first_failure={failures[0]!r}" if failures else ""), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    await asyncio.sleep(0.05)  # let any pending EOFs be read
    closed = sum(1 for r, _ in conns if r.at_eof())
    print(f"CHECK open={len(conns) - closed} closed={closed}", flush=True)
    for _, w in conns:
        w.close()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="bench.example.com")
    ap.add_argument("--path", default="/")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.count + 100:
        print(f"idle_clients: RLIMIT_NOFILE hard limit {hard} < {args.count + 100}",
              file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
