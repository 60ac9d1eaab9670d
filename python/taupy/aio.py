"""The asyncio client: :func:`connect` and :class:`AsyncClient`.

The same methods as :class:`taupy.Client`, as coroutines::

    import taupy.aio

    async def main() -> None:
        async with await taupy.aio.connect(database="sensors") as db:
            print(await db.at("temp", 1800))

One connection runs one request at a time: concurrent coroutines sharing a client are
served in turn (a lock keeps each statement's reply matched to it). For parallelism open
several clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from typing import Any, AsyncIterator, Awaitable, Deque, Dict, Iterable, List, Optional, Sequence, TypeVar

from . import batch as _batch
from . import protocol as P
from .client import make_ssl_context
from .errors import (
    AuthenticationError,
    ConnectionLost,
    ProtocolError,
    ServerError,
    TauConnectionError,
    TauTimeout,
    error_from_reply,
)
from .protocol import Layer, RangeResult, Reply, TimeLike
from .values import Value, check_name, string_literal

__all__ = ["connect", "AsyncClient"]

_RECV = 1 << 20
T = TypeVar("T")


async def connect(
    host: str = "127.0.0.1",
    port: int = 7070,
    *,
    user: Optional[str] = None,
    password: Optional[str] = None,
    database: Optional[str] = None,
    tls: bool = False,
    ca_file: Optional[str] = None,
    tls_insecure: bool = False,
    timeout: Optional[float] = None,
) -> "AsyncClient":
    """Open a connection; the arguments are those of :func:`taupy.connect`."""
    use_tls = tls or ca_file is not None or tls_insecure
    ctx: Optional[ssl.SSLContext] = make_ssl_context(ca_file, tls_insecure) if use_tls else None
    try:
        opening = asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=host if ctx is not None else None
        )
        reader, writer = await asyncio.wait_for(opening, timeout)
    except asyncio.TimeoutError as e:
        raise TauTimeout(f"timed out connecting to {host}:{port}") from e
    except ssl.SSLError as e:
        raise TauConnectionError(f"TLS handshake with {host}:{port} failed: {e}") from e
    except OSError as e:
        raise TauConnectionError(f"cannot connect to {host}:{port}: {e}") from e
    client = AsyncClient(reader, writer, host=host, port=port, timeout=timeout)
    try:
        if user is not None:
            await client.auth(user, password if password is not None else "")
        if database is not None:
            await client.use(database)
    except BaseException:
        await client.close()
        raise
    return client


class AsyncClient:
    """One asyncio connection to a Tau server; see :class:`taupy.Client` for the
    semantics of every method (here each is a coroutine)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        host: str = "",
        port: int = 0,
        timeout: Optional[float] = None,
    ):
        self._reader = reader
        self._writer: Optional[asyncio.StreamWriter] = writer
        self._buf = bytearray()
        self._scan = 0
        self._timeout = timeout
        self._plain_first = writer.get_extra_info("sslcontext") is None
        self._lock = asyncio.Lock()
        self.host = host
        self.port = port
        self.database: Optional[str] = None
        self.in_transaction = False

    # ------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._writer is None else "open"
        return f"<taupy.aio.AsyncClient {self.host}:{self.port} {state} database={self.database!r}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran or the connection was lost."""
        return self._writer is None

    def _abort(self) -> None:
        w, self._writer = self._writer, None
        self.in_transaction = False
        if w is not None:
            w.close()

    async def close(self) -> None:
        """Close the connection (an open transaction is rolled back by the server)."""
        w, self._writer = self._writer, None
        self.in_transaction = False
        if w is not None:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()

    async def quit(self) -> None:
        """Send ``QUIT`` and close."""
        try:
            P.check(await self._request("QUIT"), "QUIT")
        finally:
            await self.close()

    # ------------------------------------------------------------- transport

    def _lost(self, why: str, cause: Optional[BaseException] = None) -> ConnectionLost:
        self._abort()
        err = ConnectionLost(f"connection to {self.host}:{self.port} lost: {why}")
        if cause is not None:
            err.__cause__ = cause
        return err

    def _live(self) -> asyncio.StreamWriter:
        if self._writer is None:
            raise TauConnectionError("the client is closed")
        return self._writer

    def _write(self, data: bytes) -> None:
        w = self._live()
        if w.is_closing():
            raise self._lost("the connection is closing")
        w.write(data)

    async def _read_line(self) -> str:
        buf = self._buf
        i = buf.find(b"\n", self._scan)
        while i < 0:
            self._scan = len(buf)
            await self._fill()
            i = buf.find(b"\n", self._scan)
        line = buf[:i].decode("utf-8")
        del buf[: i + 1]
        self._scan = 0
        return line

    async def _read_line_bytes(self) -> bytes:
        buf = self._buf
        i = buf.find(b"\n", self._scan)
        while i < 0:
            self._scan = len(buf)
            await self._fill()
            i = buf.find(b"\n", self._scan)
        line = bytes(buf[:i])
        del buf[: i + 1]
        self._scan = 0
        return line

    async def _request_bytes(self, statement: str) -> bytes:
        async def run() -> bytes:
            self._write((statement + "\n").encode("utf-8"))
            return await self._read_line_bytes()

        return await self._guarded(run())

    async def _fill(self) -> None:
        self._live()
        try:
            if self._timeout is None:
                chunk = await self._reader.read(_RECV)
            else:
                chunk = await asyncio.wait_for(self._reader.read(_RECV), self._timeout)
        except asyncio.TimeoutError as e:
            self._abort()
            raise TauTimeout(f"no reply within {self._timeout} s; the client is closed") from e
        except OSError as e:
            raise self._lost(f"receiving failed ({e})", e) from e
        if not chunk:
            raise self._lost("the server closed the connection before replying")
        if self._plain_first:
            self._plain_first = False
            if chunk[0] in (0x15, 0x16):  # a TLS alert or handshake record
                self._abort()
                raise TauConnectionError(
                    f"{self.host}:{self.port} answered with TLS: connect with tls=True and "
                    "ca_file (or tls_insecure)"
                )
        self._buf += chunk

    def _has_line(self) -> bool:
        return self._buf.find(b"\n", self._scan) >= 0

    async def _guarded(self, aw: Awaitable[T]) -> T:
        """Run one request under the lock; a cancellation mid-request closes the client
        (its reply could no longer be matched)."""
        async with self._lock:
            try:
                return await aw
            except asyncio.CancelledError:
                self._abort()
                raise

    async def _request_unlocked(self, statement: str) -> str:
        self._write((statement + "\n").encode("utf-8"))
        return await self._read_line()

    async def _request(self, statement: str) -> str:
        return await self._guarded(self._request_unlocked(statement))

    async def _ok(self, stmt: str) -> None:
        P.parse_ok(await self._request(stmt), stmt)

    # ------------------------------------------------------------- raw statements

    async def execute(self, statement: str) -> Reply:
        """Run any one statement; see :meth:`taupy.Client.execute`."""
        stmt = P.one_line(statement, "statement").strip()
        if not stmt:
            raise ValueError("a blank statement gets no reply")
        raw = await self._request(stmt)
        self._track(stmt, raw)
        if raw.startswith("ERR"):
            raise error_from_reply(raw, stmt)
        return Reply(raw)

    async def pipeline(self, statements: Iterable[str], *, raise_on_error: bool = True) -> List[Reply]:
        """Send all statements ahead, then read the replies; see :meth:`taupy.Client.pipeline`."""
        stmts = []
        for s in statements:
            s = P.one_line(s, "statement").strip()
            if not s:
                raise ValueError("a blank statement gets no reply")
            stmts.append(s)
        if not stmts:
            return []

        async def run() -> List[str]:
            self._write(("\n".join(stmts) + "\n").encode("utf-8"))
            return [await self._read_line() for _ in stmts]

        raws = await self._guarded(run())
        replies = []
        for s, raw in zip(stmts, raws):
            self._track(s, raw)
            replies.append(Reply(raw))
        if raise_on_error:
            for s, r in zip(stmts, replies):
                if r.kind == "ERR":
                    raise error_from_reply(r.raw, s)
        return replies

    def _track(self, stmt: str, raw: str) -> None:
        words = stmt.split(None, 2)
        head = " ".join(words[:2]).upper()
        first = words[0].upper()
        ok = not raw.startswith("ERR")
        if head == "START TRANSACTION" and ok:
            self.in_transaction = True
        elif first in ("COMMIT", "ROLLBACK"):
            if ok or first == "COMMIT":
                self.in_transaction = False
        elif head == "USE DATABASE" and ok and len(words) > 2:
            self.database = words[2].strip()

    # ------------------------------------------------------------- reads

    async def at(self, lens: str, t: int, *, as_of: Optional[TimeLike] = None, layer: Optional[int] = None) -> Optional[Value]:
        """See :meth:`taupy.Client.at`."""
        stmt = P.at(lens, t, as_of, layer)
        return P.parse_val(await self._request(stmt), stmt)

    async def range(
        self,
        lens: str,
        start: int,
        end: int,
        *,
        as_of: Optional[TimeLike] = None,
        layer: Optional[int] = None,
        where: Optional[str] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> RangeResult:
        """See :meth:`taupy.Client.range`."""
        stmt = P.range_(lens, start, end, as_of, layer, where, limit, offset)
        return P.parse_range_bytes(await self._request_bytes(stmt), stmt)

    async def range_df(
        self,
        lens: str,
        start: int,
        end: int,
        *,
        as_of: Optional[TimeLike] = None,
        layer: Optional[int] = None,
        where: Optional[str] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> Any:
        """See :meth:`taupy.Client.range_df`."""
        from .pandas_support import frame_from_line

        stmt = P.range_(lens, start, end, as_of, layer, where, limit, offset)
        return frame_from_line(await self._request_bytes(stmt), stmt)

    async def reduce(
        self,
        lens: str,
        start: int,
        end: int,
        fn: str,
        *,
        as_of: Optional[TimeLike] = None,
        layer: Optional[int] = None,
    ) -> Optional[Value]:
        """See :meth:`taupy.Client.reduce`."""
        stmt = P.reduce(lens, start, end, fn, as_of, layer)
        return P.parse_val(await self._request(stmt), stmt)

    async def history(self, lens: str, start: Optional[int] = None, end: Optional[int] = None) -> List[Layer]:
        """See :meth:`taupy.Client.history`."""
        stmt = P.history(lens, start, end)
        return P.parse_layers(await self._request(stmt), stmt)

    # ------------------------------------------------------------- writes

    async def append(self, lens: str, rows: Iterable[Sequence[Any]]) -> None:
        """See :meth:`taupy.Client.append`."""
        stmt = P.append(lens, rows)
        if stmt is not None:
            await self._ok(stmt)

    async def batch_append(
        self,
        lens: str,
        starts: Any,
        ends: Any,
        values: Any,
        *,
        chunk_rows: int = _batch.DEFAULT_CHUNK_ROWS,
        max_statement_bytes: int = _batch.DEFAULT_MAX_STATEMENT_BYTES,
        depth: int = 8,
    ) -> int:
        """See :meth:`taupy.Client.batch_append`."""
        cols = _batch.columns(starts, ends, values)
        if depth < 1:
            raise ValueError("depth must be at least 1")

        async def run() -> int:
            outstanding: Deque[int] = deque()
            written = 0
            first: Optional[ServerError] = None

            async def reap() -> None:
                nonlocal written, first
                raw = await self._read_line()
                rows = outstanding.popleft()
                if raw == "OK":
                    written += rows
                elif first is None:
                    first = error_from_reply(raw, "BATCH APPEND")
                elif not raw.startswith("ERR"):
                    raise ProtocolError(f"unexpected reply to BATCH APPEND: {raw[:200]!r}")

            for stmt, rows in _batch.statements(lens, cols, chunk_rows, max_statement_bytes):
                if first is not None:
                    break
                self._write(stmt)
                outstanding.append(rows)
                while outstanding and (len(outstanding) >= depth or self._has_line()):
                    await reap()
                # let the transport flush what it holds before encoding the next chunk
                await asyncio.sleep(0)
            while outstanding:
                await reap()
            if first is not None:
                setattr(first, "rows_written", written)
                raise first
            return written

        return await self._guarded(run())

    # ------------------------------------------------------------- catalog

    async def auth(self, user: str, password: str) -> None:
        """See :meth:`taupy.Client.auth`."""
        raw = await self._request(P.auth(user, password))
        if raw != "OK":
            err = error_from_reply(raw, f"AUTH {user} ***")
            await self.close()
            if isinstance(err, AuthenticationError):
                raise err
            raise AuthenticationError(err.message, raw, f"AUTH {user} ***")

    async def use(self, database: str) -> None:
        """``USE DATABASE``."""
        await self._ok(f"USE DATABASE {check_name(database, 'database')}")
        self.database = database

    async def create_database(self, name: str) -> None:
        """``CREATE DATABASE``."""
        await self._ok(f"CREATE DATABASE {check_name(name, 'database')}")

    async def drop_database(self, name: str) -> None:
        """``DROP DATABASE``."""
        await self._ok(f"DROP DATABASE {check_name(name, 'database')}")

    async def create_lens(self, name: str, type: Any) -> None:
        """``CREATE LENS name type``."""
        await self._ok(f"CREATE LENS {check_name(name, 'lens')} {P.lens_type(type)}")

    async def drop_lens(self, name: str) -> None:
        """``DROP LENS``."""
        await self._ok(f"DROP LENS {check_name(name, 'lens')}")

    async def derive(self, name: str, expr: str) -> None:
        """``DERIVE LENS name AS expr``."""
        await self._ok(f"DERIVE LENS {check_name(name, 'lens')} AS {P.dedent_expr(expr)}")

    async def compact(self, lens: str) -> None:
        """``COMPACT LENS``."""
        await self._ok(f"COMPACT LENS {check_name(lens, 'lens')}")

    async def copy(self, lens: str, file: str) -> None:
        """``COPY LENS lens FROM "file"`` (a file on the server)."""
        await self._ok(f"COPY LENS {check_name(lens, 'lens')} FROM {string_literal(file)}")

    async def create_user(self, name: str, password: str) -> None:
        """``CREATE USER name PASSWORD "password"``."""
        await self._ok(f"CREATE USER {check_name(name, 'user')} PASSWORD {string_literal(password)}")

    async def drop_user(self, name: str) -> None:
        """``DROP USER``."""
        await self._ok(f"DROP USER {check_name(name, 'user')}")

    async def grant(self, perms: str, database: str, user: str) -> None:
        """``GRANT perms ON database TO user``."""
        await self._ok(P.grant(perms, database, user))

    async def revoke(self, perms: str, database: str, user: str) -> None:
        """``REVOKE perms ON database FROM user``."""
        await self._ok(P.revoke(perms, database, user))

    async def backup(self, database: str, name: str) -> None:
        """``BACKUP DATABASE database TO "name"``."""
        await self._ok(f"BACKUP DATABASE {check_name(database, 'database')} TO {string_literal(name)}")

    async def restore(self, database: str, name: str, *, as_of: Optional[TimeLike] = None) -> None:
        """``RESTORE DATABASE database FROM "name" [AS OF t]``."""
        stmt = f"RESTORE DATABASE {check_name(database, 'database')} FROM {string_literal(name)}"
        if as_of is not None:
            stmt += P._selector(as_of, None)
        await self._ok(stmt)

    async def show_databases(self) -> List[str]:
        """``SHOW DATABASES``."""
        return P.parse_names(await self._request("SHOW DATABASES"), "SHOW DATABASES")

    async def show_lenses(self) -> List[str]:
        """``SHOW LENSES``."""
        return P.parse_names(await self._request("SHOW LENSES"), "SHOW LENSES")

    async def show_users(self) -> List[str]:
        """``SHOW USERS``."""
        return P.parse_names(await self._request("SHOW USERS"), "SHOW USERS")

    async def show_grants(self, user: Optional[str] = None) -> Dict[str, Dict[str, str]]:
        """``SHOW GRANTS [user]`` as ``{user: {database: perms}}``."""
        stmt = "SHOW GRANTS" + ("" if user is None else " " + check_name(user, "user"))
        return P.parse_grants(await self._request(stmt), stmt)

    async def show_status(self) -> Dict[str, str]:
        """``SHOW STATUS`` as ``{key: value}``."""
        return P.parse_status(await self._request("SHOW STATUS"), "SHOW STATUS")

    # ------------------------------------------------------------- transactions

    async def begin(self) -> None:
        """``START TRANSACTION``."""
        await self._ok("START TRANSACTION")
        self.in_transaction = True

    async def commit(self) -> None:
        """``COMMIT``; see :meth:`taupy.Client.commit`."""
        try:
            raw = await self._request("COMMIT")
        except ConnectionLost as e:
            raise ConnectionLost(
                f"{e}; the COMMIT was sent but not acknowledged, so the transaction may or "
                "may not have been committed"
            ) from e
        finally:
            self.in_transaction = False
        P.parse_ok(raw, "COMMIT")

    async def rollback(self) -> None:
        """``ROLLBACK``."""
        try:
            await self._ok("ROLLBACK")
        finally:
            self.in_transaction = False

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator["AsyncClient"]:
        """``async with client.transaction(): ...`` — COMMIT on success, ROLLBACK when the
        block raises."""
        await self.begin()
        try:
            yield self
        except BaseException:
            if self._writer is not None and self.in_transaction:
                with contextlib.suppress(TauConnectionError, ServerError):
                    await self.rollback()
            self.in_transaction = False
            raise
        await self.commit()
