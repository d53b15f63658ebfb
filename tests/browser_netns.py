"""Chromium in a network namespace of its own, whose only way out leads to the test's JupyterLab.

Docker adds and removes a network interface whenever a container or a build
step starts.  Chromium takes every such change as "the network changed" and
aborts the requests it has in flight with ``net::ERR_NETWORK_CHANGED``, even
those to 127.0.0.1 (seen: JupyterLab's theme and its kernel list failed to
load while the course built images).  In a namespace of its own Chromium sees
no change at all.  There, this script listens on 127.0.0.1:PORT and carries
each connection over a unix socket to the test process, which carries it on
to JupyterLab on the machine's own 127.0.0.1.

Used as Playwright's browser executable, through a wrapper::

    unshare --net -- python browser_netns.py SOCKET PORT CHROMIUM [CHROMIUM ARGS...]

The forwarder is a child process that ends when Chromium does; Chromium itself
replaces this process, so Playwright's pipes to it stay as they were.
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import sys
from typing import Awaitable, Callable

Opener = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def bridge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, open_upstream: Opener) -> None:
    """Carry one connection both ways to a new upstream connection."""
    try:
        up_reader, up_writer = await open_upstream()
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


def _loopback_up() -> None:
    # `ip link set lo up`, without needing iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS with IFF_UP.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, request)[:18])[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 0x1))


async def _serve(listener: socket.socket, unix_path: str, parent: int) -> None:
    server = await asyncio.start_server(
        lambda r, w: bridge(r, w, lambda: asyncio.open_unix_connection(unix_path)), sock=listener)
    async with server:
        while os.getppid() == parent:  # Chromium (this process's parent after exec) still runs
            await asyncio.sleep(1)


def main(argv: list[str]) -> None:
    unix_path, port, chromium, *args = argv
    _loopback_up()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(64)
    parent = os.getpid()
    if os.fork() == 0:
        for fd in (3, 4):  # Playwright's pipes to Chromium: only Chromium may hold them
            if fd != listener.fileno():
                try:
                    os.close(fd)
                except OSError:
                    pass
        asyncio.run(_serve(listener, unix_path, parent))
        os._exit(0)
    listener.close()
    os.execv(chromium, [chromium, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
