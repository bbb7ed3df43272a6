"""A TCP relay that adds a fixed one-way delay in each direction (a WAN link where `tc netem` is missing):
listens on LISTEN_HOST:LISTEN_PORT, connects each client to TARGET_HOST:TARGET_PORT, and forwards every chunk
DELAY_MS after it arrived, in order. Used by tests/e2e/test_edge.py between an edge and its upstream.

Run: /usr/bin/python3 delay_relay.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS"""
import asyncio
import sys


async def pipe(reader, writer, delay_s):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay_s, data))
    finally:
        queue.put_nowait((0, None))
        await sender


async def main():
    listen_host, listen_port, target_host, target_port, delay_ms = sys.argv[1:6]
    delay_s = float(delay_ms) / 1000

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            client_writer.close()
            return
        for s in (client_writer, server_writer):
            s.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY
        await asyncio.gather(pipe(client_reader, server_writer, delay_s), pipe(server_reader, client_writer, delay_s),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, listen_host, int(listen_port))
    print("relay ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
