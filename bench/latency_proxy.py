#!/usr/bin/env python3
"""A TCP proxy that holds every chunk for DELAY microseconds in each direction, keeping order:
PostgreSQL as if it were on another host, for runs where round trips, not PostgreSQL's CPU,
bound the writes (`tc netem` is not available on the development machine).

    python3 bench/latency_proxy.py 15432 5432 250 &
    BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:15432/test python3 bench/run.py --backends postgres ...

The proxy is one Python process: even with DELAY 0 it adds its own hop (and CPU) to every round
trip, which is what a network does too. asyncio's timers are not precise below a millisecond, so
a DELAY of 250 adds more than 0.5 ms per round trip; compare binaries within one proxy setting.
"""

import asyncio
import sys
import time


async def pipe(reader, writer, delay):
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                writer.close()
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    while True:
        data = await reader.read(65536)
        await queue.put((time.monotonic() + delay, data or None))
        if not data:
            break
    await sender


async def main(listen, target, delay):
    async def handle(client_reader, client_writer):
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pipe(client_reader, server_writer, delay), pipe(server_reader, client_writer, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1e6))
