"""Fixtures: a real tau-server per test session (plain, and TLS + auth), a fresh database
per test.

The server binary is $TAU_SERVER, else target/debug/tau-server, else
target/release/tau-server (relative to the repository root).
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
from typing import Iterator, List, Optional, Tuple

import pytest

import taupy

ROOT = pathlib.Path(__file__).resolve().parents[2]


def server_binary() -> str:
    env = os.environ.get("TAU_SERVER")
    if env:
        return env
    for p in (ROOT / "target" / "debug" / "tau-server", ROOT / "target" / "release" / "tau-server"):
        if p.exists():
            return str(p)
    raise RuntimeError("no tau-server binary: set TAU_SERVER or build the workspace")


class Server:
    """A running tau-server; ``host``/``port`` from its "serving on" line."""

    def __init__(self, args: List[str], data_dir: Optional[str] = None, env: Optional[dict] = None):
        self.data_dir = data_dir
        self.log: List[str] = []
        cmd = [server_binary(), "--bind", "127.0.0.1:0", "--log-level", "warn", *args]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stderr is not None
        addr = None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if "serving on " in line:
                addr = line.split("serving on ")[1].split()[0]
                break
        if addr is None:
            self.proc.wait()
            raise RuntimeError(f"tau-server exited before serving: {self.log}")
        host, _, port = addr.rpartition(":")
        self.host, self.port = host, int(port)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.log.append(raw.decode(errors="replace").rstrip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    s = Server(["--in-memory"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def tls_server() -> Iterator[Tuple[Server, str]]:
    """A durable server with TLS (self-signed) and auth on; bootstrap admin admin/pw."""
    d = tempfile.mkdtemp(prefix="taupy-tls-")
    cfg = pathlib.Path(d) / "tau.toml"
    data = pathlib.Path(d) / "data"
    cfg.write_text(
        f'data_dir = "{data}"\n[tls]\nself_signed = true\n'
        '[auth]\nenabled = true\nadmin_user = "admin"\nadmin_password_env = "TAUPY_TEST_ADMIN_PW"\n'
        "max_failures = 1000\n"
    )
    s = Server(["--config", str(cfg)], data_dir=str(data), env={"TAUPY_TEST_ADMIN_PW": "pw with spaces \"q\""})
    yield s, str(data / "tls-self-signed.pem")
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


_db_counter = itertools.count()


@pytest.fixture
def db_name() -> str:
    return f"t{os.getpid()}_{next(_db_counter)}"


@pytest.fixture
def client(server: Server, db_name: str) -> Iterator[taupy.Client]:
    """A connection to the plain server with a fresh database selected."""
    c = taupy.connect(server.host, server.port, timeout=30)
    c.create_database(db_name)
    c.use(db_name)
    yield c
    c.close()
