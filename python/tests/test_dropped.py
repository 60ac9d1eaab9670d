"""A connection lost mid-statement or mid-transaction raises and never reports success."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Callable, Iterator, List

import pytest

import taupy
import taupy.aio

from .conftest import Server


class FakeServer:
    """A one-connection TCP server scripted by ``handler(conn, lines)``."""

    def __init__(self, handler: Callable[[socket.socket], None]):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received: List[bytes] = []
        self.thread = threading.Thread(target=self._run, args=(handler,), daemon=True)
        self.thread.start()

    def _run(self, handler: Callable[[socket.socket], None]) -> None:
        conn, _ = self.sock.accept()
        try:
            handler(conn)
        finally:
            conn.close()
            self.sock.close()


def read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        b = conn.recv(1)
        if not b:
            break
        data += b
    return data


def test_lost_before_the_reply_raises() -> None:
    def handler(conn: socket.socket) -> None:
        read_line(conn)  # read the statement, then vanish without a reply

    fake = FakeServer(handler)
    c = taupy.connect("127.0.0.1", fake.port, timeout=10)
    with pytest.raises(taupy.ConnectionLost):
        c.append("x", [(0, 10, 1)])
    assert c.closed
    with pytest.raises(taupy.TauConnectionError):
        c.at("x", 1)


def test_half_a_reply_is_not_a_success() -> None:
    def handler(conn: socket.socket) -> None:
        read_line(conn)
        conn.sendall(b"O")  # the first byte of "OK", then the connection drops

    fake = FakeServer(handler)
    c = taupy.connect("127.0.0.1", fake.port, timeout=10)
    with pytest.raises(taupy.ConnectionLost):
        c.create_lens("x", int)


def test_lost_at_commit_says_the_outcome_is_unknown() -> None:
    def handler(conn: socket.socket) -> None:
        for reply in (b"OK\n", b"OK\n"):  # START TRANSACTION, APPEND
            read_line(conn)
            conn.sendall(reply)
        read_line(conn)  # COMMIT: no reply

    fake = FakeServer(handler)
    c = taupy.connect("127.0.0.1", fake.port, timeout=10)
    with pytest.raises(taupy.ConnectionLost) as e:
        with c.transaction():
            c.append("x", [(0, 10, 1)])
    assert "may or may not have been committed" in str(e.value)
    assert not c.in_transaction and c.closed


def test_lost_mid_batch_raises() -> None:
    def handler(conn: socket.socket) -> None:
        read_line(conn)
        conn.sendall(b"OK\n")  # first chunk acknowledged, then gone
        time.sleep(0.05)

    fake = FakeServer(handler)
    c = taupy.connect("127.0.0.1", fake.port, timeout=10)
    with pytest.raises(taupy.ConnectionLost):
        c.batch_append("x", range(0, 5000), range(1, 5001), [1.5] * 5000, chunk_rows=100)


def test_timeout_closes_the_client() -> None:
    release = threading.Event()

    def handler(conn: socket.socket) -> None:
        read_line(conn)
        release.wait(10)

    fake = FakeServer(handler)
    c = taupy.connect("127.0.0.1", fake.port, timeout=0.3)
    with pytest.raises(taupy.TauTimeout):
        c.at("x", 1)
    assert c.closed
    release.set()


def test_real_server_killed_mid_transaction(tmp_path: object) -> None:
    server = Server(["--in-memory"])
    try:
        c = taupy.connect(server.host, server.port, timeout=10)
        c.create_database("d")
        c.use("d")
        c.create_lens("x", int)
        c.begin()
        c.append("x", [(0, 10, 1)])
        server.stop()  # SIGKILL
        with pytest.raises(taupy.ConnectionLost):
            c.commit()
        assert c.closed and not c.in_transaction
    finally:
        server.stop()


def test_async_lost_connection_raises() -> None:
    def handler(conn: socket.socket) -> None:
        read_line(conn)
        conn.sendall(b"OK\n")
        read_line(conn)

    fake = FakeServer(handler)

    async def main() -> None:
        c = await taupy.aio.connect("127.0.0.1", fake.port, timeout=10)
        await c.begin()
        with pytest.raises(taupy.ConnectionLost):
            await c.commit()
        assert c.closed
        with pytest.raises(taupy.TauConnectionError):
            await c.at("x", 1)

    asyncio.run(main())


def test_pipeline_reads_while_sending_so_it_cannot_deadlock() -> None:
    """A server that writes all its replies before reading anything: a client that only
    read after sending everything would block forever once both directions' socket
    buffers are full (30 MB each way here)."""
    n = 300_000
    lens = "x" * 90
    reply = b"VAL s" + b"y" * 94 + b"\n"
    got = {}

    def handler(conn: socket.socket) -> None:
        conn.sendall(reply * n)
        total = 0
        expect = n * len(f"AT LENS {lens} 1\n")
        while total < expect:
            b = conn.recv(1 << 20)
            if not b:
                break
            total += len(b)
        got["bytes"] = total

    fake = FakeServer(handler)
    c = taupy.connect("127.0.0.1", fake.port, timeout=60)
    replies = c.pipeline([f"AT LENS {lens} 1"] * n)
    assert len(replies) == n and replies[-1].value == "y" * 94
    fake.thread.join(30)
    assert got["bytes"] == n * len(f"AT LENS {lens} 1\n")
