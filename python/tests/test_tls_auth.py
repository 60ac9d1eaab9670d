"""TLS (self-signed certificate) and AUTH against a real tau-server."""

from __future__ import annotations

import asyncio
from typing import Tuple

import pytest

import taupy
import taupy.aio

from .conftest import Server

PW = 'pw with spaces "q"'


def test_tls_and_auth(tls_server: Tuple[Server, str], db_name: str) -> None:
    server, ca = tls_server
    with taupy.connect("localhost", server.port, ca_file=ca, user="admin", password=PW, timeout=30) as c:
        assert c.show_status()["auth"] == "on"
        c.create_database(db_name)
        c.use(db_name)
        c.create_lens("x", float)
        c.append("x", [(0, 10, 2.5)])
        assert c.at("x", 5) == 2.5
        c.create_user("alice", "secret")
        c.grant("R", db_name, "alice")
        assert c.show_grants("alice") == {"alice": {db_name: "R"}}
        assert set(c.show_users()) == {"admin", "alice"}
    # alice can read, not write
    with taupy.connect("127.0.0.1", server.port, ca_file=ca, user="alice", password="secret", database=db_name) as a:
        assert a.range("x", 0, 10) == [(0, 10, 2.5)]
        with pytest.raises(taupy.PermissionDenied):
            a.append("x", [(10, 20, 1.0)])
        with pytest.raises(taupy.PermissionDenied):
            a.create_lens("y", int)
        assert a.at("x", 5) == 2.5
    # tls_insecure: encrypted, certificate not checked
    with taupy.connect("127.0.0.1", server.port, tls_insecure=True, user="admin", password=PW) as c:
        assert db_name in c.show_databases()


def test_auth_failures(tls_server: Tuple[Server, str]) -> None:
    server, ca = tls_server
    with pytest.raises(taupy.AuthenticationError) as e:
        taupy.connect("localhost", server.port, ca_file=ca, user="admin", password="wrong")
    assert e.value.message == "authentication failed"
    c = taupy.connect("localhost", server.port, ca_file=ca)
    with pytest.raises(taupy.AuthenticationError) as e2:
        c.show_databases()
    assert e2.value.message == "authentication required"
    # the server closed the connection after that
    with pytest.raises(taupy.ConnectionLost):
        c.show_databases()
    assert c.closed


def test_tls_needs_a_trusted_certificate(tls_server: Tuple[Server, str]) -> None:
    server, _ = tls_server
    # the system CAs do not trust a self-signed certificate
    with pytest.raises(taupy.TauConnectionError) as e:
        taupy.connect("localhost", server.port, tls=True, timeout=10)
    assert "TLS" in str(e.value)
    # a plain client on a TLS port never gets a reply it could take for success
    c = taupy.connect("127.0.0.1", server.port, timeout=10)
    with pytest.raises(taupy.TauConnectionError):
        c.execute("SHOW DATABASES")
    assert c.closed


def test_async_tls_and_auth(tls_server: Tuple[Server, str]) -> None:
    server, ca = tls_server

    async def main() -> None:
        c = await taupy.aio.connect("localhost", server.port, ca_file=ca, user="admin", password=PW, timeout=30)
        async with c:
            st = await c.show_status()
            assert st["auth"] == "on"
        assert c.closed
        with pytest.raises(taupy.AuthenticationError):
            await taupy.aio.connect("localhost", server.port, ca_file=ca, user="admin", password="bad")
        with pytest.raises(taupy.TauConnectionError):
            await taupy.aio.connect("localhost", server.port, tls=True, timeout=10)

    asyncio.run(main())
