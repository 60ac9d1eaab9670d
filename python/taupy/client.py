"""The synchronous client: :func:`connect` and :class:`Client`."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections import deque
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence

from . import batch as _batch
from . import protocol as P
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

__all__ = ["connect", "Client", "make_ssl_context"]

_RECV = 1 << 20
_SEND_PIECE = 1 << 18
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def make_ssl_context(ca_file: Optional[str] = None, tls_insecure: bool = False) -> ssl.SSLContext:
    """The client TLS context: trust ``ca_file`` (PEM; e.g. the server's
    ``tls-self-signed.pem``) or, without it, the system's CAs. ``tls_insecure`` accepts any
    certificate (encrypted, but the server is not authenticated: for testing only)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(
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
) -> "Client":
    """Open a connection to a Tau server.

    Args:
        host, port: the server (default ``127.0.0.1:7070``).
        user, password: send ``AUTH user password`` first (needed when the server has
            authentication on). Raises :class:`~taupy.errors.AuthenticationError` on failure.
        database: ``USE DATABASE`` it right away.
        tls: connect with TLS; implied by ``ca_file`` or ``tls_insecure``.
        ca_file: PEM file of the certificate(s) to trust (the server's self-signed
            certificate is written to ``<data-dir>/tls-self-signed.pem``).
        tls_insecure: accept any certificate (testing only).
        timeout: seconds to wait for the connection and for each reply (``None``: forever).
            A reply that does not come in time raises :class:`~taupy.errors.TauTimeout` and
            closes the client.

    Returns:
        A :class:`Client`, usable as a context manager.
    """
    use_tls = tls or ca_file is not None or tls_insecure
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout as e:
        raise TauTimeout(f"timed out connecting to {host}:{port}") from e
    except OSError as e:
        raise TauConnectionError(f"cannot connect to {host}:{port}: {e}") from e
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if use_tls:
            ctx = make_ssl_context(ca_file, tls_insecure)
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except ssl.SSLError as e:
                raise TauConnectionError(f"TLS handshake with {host}:{port} failed: {e}") from e
            except socket.timeout as e:
                raise TauTimeout(f"timed out in the TLS handshake with {host}:{port}") from e
            except OSError as e:
                raise TauConnectionError(
                    f"TLS handshake with {host}:{port} failed: {e} (is the server serving TLS?)"
                ) from e
        sock.settimeout(timeout)
    except BaseException:
        sock.close()
        raise
    client = Client(sock, host=host, port=port, timeout=timeout)
    try:
        if user is not None:
            client.auth(user, password if password is not None else "")
        if database is not None:
            client.use(database)
    except BaseException:
        client.close()
        raise
    return client


class Client:
    """One connection to a Tau server. Not thread-safe: use one client per thread.

    Every method sends one statement (``\\n``-terminated) and waits for its reply, except
    :meth:`pipeline` and :meth:`batch_append`, which send many ahead and then read the
    replies in order. An ``ERR`` reply raises the matching
    :class:`~taupy.errors.ServerError` subclass; the connection stays usable. A lost
    connection raises :class:`~taupy.errors.ConnectionLost` and closes the client: a
    statement whose reply did not arrive is never reported as a success.
    """

    def __init__(self, sock: socket.socket, *, host: str = "", port: int = 0, timeout: Optional[float] = None):
        self._sock: Optional[socket.socket] = sock
        self._buf = bytearray()
        self._rview = memoryview(bytearray(_RECV))
        self._scan = 0
        self._eof = False
        self._plain_first = not isinstance(sock, ssl.SSLSocket)
        self._timeout = timeout
        self.host = host
        self.port = port
        self.database: Optional[str] = None
        """The database selected with :meth:`use` (``None`` until then)."""
        self.in_transaction = False
        """True between :meth:`begin` and :meth:`commit` / :meth:`rollback`."""

    # ------------------------------------------------------------- lifecycle

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._sock is None else "open"
        return f"<taupy.Client {self.host}:{self.port} {state} database={self.database!r}>"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran or the connection was lost."""
        return self._sock is None

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back by the server)."""
        sock, self._sock = self._sock, None
        self.in_transaction = False
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def quit(self) -> None:
        """Send ``QUIT`` (the server rolls back an open transaction and replies
        ``OK BYE``), then close."""
        try:
            raw = self._request("QUIT")
            P.check(raw, "QUIT")
        finally:
            self.close()

    # ------------------------------------------------------------- transport

    def _lost(self, why: str, cause: Optional[BaseException] = None) -> ConnectionLost:
        self.close()
        msg = f"connection to {self.host}:{self.port} lost: {why}"
        err = ConnectionLost(msg)
        if cause is not None:
            err.__cause__ = cause
        return err

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise TauConnectionError("the client is closed")
        return self._sock

    def _send(self, data: bytes) -> None:
        sock = self._live()
        try:
            sock.sendall(data)
        except socket.timeout as e:
            self.close()
            raise TauTimeout("timed out sending a statement") from e
        except OSError as e:
            raise self._lost(f"sending failed ({e})", e) from e

    def _read_line(self) -> str:
        buf = self._buf
        i = buf.find(b"\n", self._scan)
        while i < 0:
            self._scan = len(buf)
            self._fill()
            i = buf.find(b"\n", self._scan)
        line = buf[:i].decode("utf-8")
        del buf[: i + 1]
        self._scan = 0
        return line

    def _read_line_bytes(self) -> bytes:
        buf = self._buf
        i = buf.find(b"\n", self._scan)
        while i < 0:
            self._scan = len(buf)
            self._fill()
            i = buf.find(b"\n", self._scan)
        line = bytes(buf[:i])
        del buf[: i + 1]
        self._scan = 0
        return line

    def _fill(self) -> None:
        """Block until more bytes arrive (or raise ConnectionLost / TauTimeout)."""
        sock = self._live()
        if self._eof:
            raise self._lost("the server closed the connection before replying")
        try:
            # recv_into a buffer kept for the connection: recv(1 MiB) would allocate (and
            # mmap) a fresh megabyte for every reply
            got = sock.recv_into(self._rview)
        except socket.timeout as e:
            self.close()
            raise TauTimeout(f"no reply within {self._timeout} s; the client is closed") from e
        except OSError as e:
            raise self._lost(f"receiving failed ({e})", e) from e
        if not got:
            raise self._lost("the server closed the connection before replying")
        chunk = self._rview[:got]
        if self._plain_first:
            self._plain_first = False
            if chunk[0] in (0x15, 0x16):  # a TLS alert or handshake record
                self.close()
                raise TauConnectionError(
                    f"{self.host}:{self.port} answered with TLS: connect with tls=True and "
                    "ca_file (or tls_insecure)"
                )
        self._buf += chunk

    def _has_line(self) -> bool:
        return self._buf.find(b"\n", self._scan) >= 0

    def _drain_available(self, sock: socket.socket) -> None:
        """Read whatever has arrived without blocking (socket in non-blocking mode)."""
        while not self._eof:
            try:
                got = sock.recv_into(self._rview)
            except _WOULD_BLOCK:
                return
            if not got:
                self._eof = True
                return
            self._plain_first = False
            self._buf += self._rview[:got]

    def _send_pumping(self, data: bytes) -> None:
        """Send ``data`` while reading replies as they come, so that a server that stops
        reading until its replies are read can never deadlock against us."""
        sock = self._live()
        view = memoryview(data)
        sock.setblocking(False)
        try:
            while view:
                try:
                    n = sock.send(view[:_SEND_PIECE])
                    view = view[n:]
                    continue
                except _WOULD_BLOCK:
                    pass
                self._drain_available(sock)
                if self._eof:
                    # The server is gone; what it replied is in the buffer and the
                    # caller's reads report the rest as lost.
                    return
                r, w, _ = select.select([sock], [sock], [], self._timeout)
                if not r and not w:
                    self.close()
                    raise TauTimeout("timed out sending statements")
        except OSError as e:
            if isinstance(e, TauTimeout):
                raise
            # Replies already received stay readable; later reads raise ConnectionLost.
            self._eof = True
        finally:
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    sock.settimeout(self._timeout)

    def _request(self, statement: str) -> str:
        self._send((statement + "\n").encode("utf-8"))
        return self._read_line()

    # ------------------------------------------------------------- raw statements

    def execute(self, statement: str) -> Reply:
        """Run any one statement and return its :class:`~taupy.protocol.Reply`
        (``reply.raw`` is the wire line, ``reply.value`` the decoded payload).

        Raises the typed :class:`~taupy.errors.ServerError` for an ``ERR`` reply.
        """
        stmt = P.one_line(statement, "statement").strip()
        if not stmt:
            raise ValueError("a blank statement gets no reply")
        raw = self._request(stmt)
        self._track(stmt, raw)
        if raw.startswith("ERR"):
            raise error_from_reply(raw, stmt)
        return Reply(raw)

    def pipeline(self, statements: Iterable[str], *, raise_on_error: bool = True) -> List[Reply]:
        """Send all ``statements`` ahead without waiting, then read their replies in order.

        Returns one :class:`~taupy.protocol.Reply` per statement. With ``raise_on_error``
        (the default) the first ``ERR`` reply is raised once every reply has been read
        (the other statements did run); otherwise ``ERR`` replies are returned like any
        other.
        """
        stmts = []
        for s in statements:
            s = P.one_line(s, "statement").strip()
            if not s:
                raise ValueError("a blank statement gets no reply")
            stmts.append(s)
        if not stmts:
            return []
        piece: List[str] = []
        size = 0
        for s in stmts:
            piece.append(s)
            size += len(s) + 1
            if size >= _SEND_PIECE:
                self._send_pumping(("\n".join(piece) + "\n").encode("utf-8"))
                piece, size = [], 0
        if piece:
            self._send_pumping(("\n".join(piece) + "\n").encode("utf-8"))
        replies = []
        for s in stmts:
            raw = self._read_line()
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
        ok = not raw.startswith("ERR")
        if head == "START TRANSACTION" and ok:
            self.in_transaction = True
        elif head in ("COMMIT", "ROLLBACK") or words[0].upper() in ("COMMIT", "ROLLBACK"):
            if ok or words[0].upper() == "COMMIT":
                self.in_transaction = False
        elif head == "USE DATABASE" and ok and len(words) > 2:
            self.database = words[2].strip()

    def _ok(self, stmt: str) -> None:
        P.parse_ok(self._request(stmt), stmt)

    # ------------------------------------------------------------- reads

    def at(self, lens: str, t: int, *, as_of: Optional[TimeLike] = None, layer: Optional[int] = None) -> Optional[Value]:
        """The value of ``lens`` at time ``t`` (newest layer wins); ``None`` where nothing
        covers ``t`` (NIL), :data:`~taupy.values.Null` for a stored null.

        ``as_of``: only layers written at or before it count (int ms, an aware
        ``datetime``, or an RFC 3339 string). ``layer``: only that layer id.
        """
        stmt = P.at(lens, t, as_of, layer)
        return P.parse_val(self._request(stmt), stmt)

    def range(
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
        """The visible pieces of ``lens`` over ``[start, end)`` in time order: a list of
        :class:`~taupy.protocol.Piece` ``(start, end, value)`` tuples (with
        ``.to_pandas()``). ``where`` is a TauQL boolean expression over lens names."""
        stmt = P.range_(lens, start, end, as_of, layer, where, limit, offset)
        self._send((stmt + "\n").encode("utf-8"))
        return P.parse_range_bytes(self._read_line_bytes(), stmt)

    def range_df(
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
        """Like :meth:`range`, as a ``pandas.DataFrame`` with columns ``start``, ``end``
        (int64) and ``value`` (int64, float64, bool, object for str/bytes; pandas nullable
        dtypes where a stored null occurs). Needs the ``pandas`` extra."""
        from .pandas_support import frame_from_arrays, frame_from_line

        stmt = P.range_(lens, start, end, as_of, layer, where, limit, offset)
        self._send((stmt + "\n").encode("utf-8"))
        arrays, line = self._read_range_streaming()
        if arrays is not None:
            return frame_from_arrays(*arrays)
        return frame_from_line(line, stmt)

    def _read_range_streaming(self) -> Any:
        """Read one reply line; if it is a RANGE reply, parse its records column-wise in
        segments while the rest arrives. Returns ``(arrays, None)`` or ``(None, line)``."""
        from . import npfast

        buf = self._buf
        while buf.find(b"; ", 0, 64) < 0 and buf.find(b"\n", 0, 64) < 0 and len(buf) < 64:
            self._fill()
        head_end = buf.find(b"; ", 0, 64)
        nl = buf.find(b"\n", 0, 64)
        if not buf.startswith(b"RANGE ") or head_end < 0 or (0 <= nl < head_end):
            return None, self._read_line_bytes()
        try:
            n = int(bytes(buf[6:head_end]))
        except ValueError:
            return None, self._read_line_bytes()
        asm = npfast.RangeAssembler()
        done = head_end + 2  # records before this offset are parsed
        scan = done
        segment = 1 << 20
        while True:
            nl = buf.find(b"\n", scan)
            if nl >= 0:
                asm.add(bytes(buf[done:nl]))
                got = asm.result(n)
                line = bytes(buf[:nl]) if got is None else b""
                del buf[: nl + 1]
                self._scan = 0
                return (None, line) if got is None else (got, None)
            scan = len(buf)
            if not asm.failed and scan - done >= segment:
                cut = buf.rfind(b"; ", done, scan)
                if cut > done:
                    asm.add(bytes(buf[done:cut]))
                    done = cut + 2
            self._fill()

    def reduce(
        self,
        lens: str,
        start: int,
        end: int,
        fn: str,
        *,
        as_of: Optional[TimeLike] = None,
        layer: Optional[int] = None,
    ) -> Optional[Value]:
        """Fold the pieces RANGE would return with ``fn`` (``min``, ``max``, ``sum``,
        ``count``, ``avg``, ``twavg``, ``integral``, ``duration``, ``first``, ``last``);
        ``None`` (NIL) on an empty window except for ``count`` and ``duration``."""
        stmt = P.reduce(lens, start, end, fn, as_of, layer)
        return P.parse_val(self._request(stmt), stmt)

    def history(self, lens: str, start: Optional[int] = None, end: Optional[int] = None) -> List[Layer]:
        """The layers of a base lens, oldest first (only those overlapping
        ``[start, end)`` when given): :class:`~taupy.protocol.Layer` records with
        ``layer``, ``written_at`` (ms; ``written_at_datetime``), ``min_start``, ``max_end``."""
        stmt = P.history(lens, start, end)
        return P.parse_layers(self._request(stmt), stmt)

    # ------------------------------------------------------------- writes

    def append(self, lens: str, rows: Iterable[Sequence[Any]]) -> None:
        """``APPEND`` rows ``(start, end, value)`` as one layer, all or nothing. An empty
        ``rows`` sends nothing. For many rows use :meth:`batch_append`."""
        stmt = P.append(lens, rows)
        if stmt is not None:
            self._ok(stmt)

    def batch_append(
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
        """Write many rows fast: columns ``starts``, ``ends``, ``values`` (lists, tuples,
        NumPy arrays or pandas Series of equal length) are cut into ``BATCH APPEND``
        statements of at most ``chunk_rows`` rows / ``max_statement_bytes`` bytes, with up
        to ``depth`` of them in flight (pipelined).

        Each statement is its own layer, so a failure part-way is **not atomic** unless the
        call runs inside :meth:`transaction`: sending stops at the first ``ERR`` and the
        error is raised with ``rows_written`` set to the rows acknowledged. Returns the
        number of rows written.
        """
        cols = _batch.columns(starts, ends, values)
        if depth < 1:
            raise ValueError("depth must be at least 1")
        outstanding: Deque[int] = deque()
        written = 0
        first: Optional[ServerError] = None

        def reap() -> None:
            nonlocal written, first
            raw = self._read_line()
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
            self._send_pumping(stmt)
            outstanding.append(rows)
            while outstanding and (len(outstanding) >= depth or self._has_line()):
                reap()
        while outstanding:
            reap()
        if first is not None:
            setattr(first, "rows_written", written)
            raise first
        return written

    # ------------------------------------------------------------- catalog

    def auth(self, user: str, password: str) -> None:
        """``AUTH user password`` (the password is sent as a quoted string literal).
        The server closes the connection when it fails."""
        stmt = P.auth(user, password)
        raw = self._request(stmt)
        if raw != "OK":
            err = error_from_reply(raw, f"AUTH {user} ***")
            self.close()
            if isinstance(err, AuthenticationError):
                raise err
            raise AuthenticationError(err.message, raw, f"AUTH {user} ***")

    def use(self, database: str) -> None:
        """``USE DATABASE`` (per connection)."""
        self._ok(f"USE DATABASE {check_name(database, 'database')}")
        self.database = database

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE``."""
        self._ok(f"CREATE DATABASE {check_name(name, 'database')}")

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE``."""
        self._ok(f"DROP DATABASE {check_name(name, 'database')}")

    def create_lens(self, name: str, type: Any) -> None:
        """``CREATE LENS name type``; ``type`` is ``"int"``, ``"float"``, ``"str"``,
        ``"bool"``, ``"bytes"`` or the Python type ``int``, ``float``, ..."""
        self._ok(f"CREATE LENS {check_name(name, 'lens')} {P.lens_type(type)}")

    def drop_lens(self, name: str) -> None:
        """``DROP LENS``."""
        self._ok(f"DROP LENS {check_name(name, 'lens')}")

    def derive(self, name: str, expr: str) -> None:
        """``DERIVE LENS name AS expr`` (a TauQL expression over lens names)."""
        self._ok(f"DERIVE LENS {check_name(name, 'lens')} AS {P.dedent_expr(expr)}")

    def compact(self, lens: str) -> None:
        """``COMPACT LENS`` (changes no answer)."""
        self._ok(f"COMPACT LENS {check_name(lens, 'lens')}")

    def copy(self, lens: str, file: str) -> None:
        """``COPY LENS lens FROM "file"``: a CSV file on the *server*, under its import
        directory; one layer."""
        self._ok(f"COPY LENS {check_name(lens, 'lens')} FROM {string_literal(file)}")

    def create_user(self, name: str, password: str) -> None:
        """``CREATE USER name PASSWORD "password"``."""
        self._ok(f"CREATE USER {check_name(name, 'user')} PASSWORD {string_literal(password)}")

    def drop_user(self, name: str) -> None:
        """``DROP USER``."""
        self._ok(f"DROP USER {check_name(name, 'user')}")

    def grant(self, perms: str, database: str, user: str) -> None:
        """``GRANT perms ON database TO user``; ``perms`` letters of ``CRUDA`` or ``*``,
        ``database`` a name or ``*``."""
        self._ok(P.grant(perms, database, user))

    def revoke(self, perms: str, database: str, user: str) -> None:
        """``REVOKE perms ON database FROM user``."""
        self._ok(P.revoke(perms, database, user))

    def backup(self, database: str, name: str) -> None:
        """``BACKUP DATABASE database TO "name"`` (under the server's backup directory)."""
        self._ok(f"BACKUP DATABASE {check_name(database, 'database')} TO {string_literal(name)}")

    def restore(self, database: str, name: str, *, as_of: Optional[TimeLike] = None) -> None:
        """``RESTORE DATABASE database FROM "name" [AS OF t]``."""
        stmt = f"RESTORE DATABASE {check_name(database, 'database')} FROM {string_literal(name)}"
        if as_of is not None:
            stmt += P._selector(as_of, None)
        self._ok(stmt)

    def show_databases(self) -> List[str]:
        """``SHOW DATABASES``, sorted."""
        return P.parse_names(self._request("SHOW DATABASES"), "SHOW DATABASES")

    def show_lenses(self) -> List[str]:
        """``SHOW LENSES`` of the selected database, sorted."""
        return P.parse_names(self._request("SHOW LENSES"), "SHOW LENSES")

    def show_users(self) -> List[str]:
        """``SHOW USERS``, sorted."""
        return P.parse_names(self._request("SHOW USERS"), "SHOW USERS")

    def show_grants(self, user: Optional[str] = None) -> Dict[str, Dict[str, str]]:
        """``SHOW GRANTS [user]`` as ``{user: {database: perms}}``."""
        stmt = "SHOW GRANTS" + ("" if user is None else " " + check_name(user, "user"))
        return P.parse_grants(self._request(stmt), stmt)

    def show_status(self) -> Dict[str, str]:
        """``SHOW STATUS`` as ``{key: value}``."""
        return P.parse_status(self._request("SHOW STATUS"), "SHOW STATUS")

    # ------------------------------------------------------------- transactions

    def begin(self) -> None:
        """``START TRANSACTION``."""
        self._ok("START TRANSACTION")
        self.in_transaction = True

    def commit(self) -> None:
        """``COMMIT``: all buffered statements become durable and visible at once, or none
        (the error is raised and the transaction is over either way).

        If the connection is lost before the reply, :class:`~taupy.errors.ConnectionLost`
        is raised: the outcome is unknown, never reported as a success."""
        try:
            raw = self._request("COMMIT")
        except ConnectionLost as e:
            raise ConnectionLost(
                f"{e}; the COMMIT was sent but not acknowledged, so the transaction may or "
                "may not have been committed"
            ) from e
        finally:
            self.in_transaction = False
        P.parse_ok(raw, "COMMIT")

    def rollback(self) -> None:
        """``ROLLBACK``: discard the buffered statements."""
        try:
            self._ok("ROLLBACK")
        finally:
            self.in_transaction = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Client"]:
        """``with client.transaction(): ...`` — ``START TRANSACTION``, then ``COMMIT`` when
        the block ends normally or ``ROLLBACK`` when it raises (the exception propagates).
        A lost connection raises :class:`~taupy.errors.ConnectionLost` (the server rolls
        back a transaction whose connection closes)."""
        self.begin()
        try:
            yield self
        except BaseException:
            if self._sock is not None and self.in_transaction:
                with contextlib.suppress(TauConnectionError, ServerError):
                    self.rollback()
            self.in_transaction = False
            raise
        self.commit()
