"""Exceptions raised by taupy.

Every exception the client raises on purpose is a :class:`TauError`.

* :class:`ServerError` and its subclasses: the server replied ``ERR <message>``. The
  subclass is chosen by the message's prefix (SPEC "Errors"), ``message`` holds the
  server's text after ``ERR `` and ``raw`` the whole reply line.
* :class:`TauConnectionError` and its subclasses: the connection could not be made, was
  lost, or timed out. A statement whose reply never arrived is never reported as a
  success: it raises :class:`ConnectionLost`.
* :class:`ProtocolError`: a reply that does not have the shape SPEC gives.
"""

from __future__ import annotations

import re
from typing import Optional, Type

__all__ = [
    "TauError",
    "ServerError",
    "ParseError",
    "NoActiveDatabase",
    "UnknownDatabase",
    "DuplicateDatabase",
    "UnknownLens",
    "DuplicateLens",
    "UnknownUser",
    "DuplicateUser",
    "UnknownLayer",
    "TypeMismatch",
    "InvalidRange",
    "OverlappingIntervals",
    "CycleDetected",
    "InvalidExpression",
    "LensInUse",
    "PermissionDenied",
    "AuthenticationError",
    "AlreadyAuthenticated",
    "TransactionError",
    "TransactionAlreadyActive",
    "NoActiveTransaction",
    "InvalidInTransaction",
    "TransactionTooLarge",
    "LineTooLong",
    "ConnectionLimit",
    "ServerBusy",
    "StorageError",
    "DuplicateBackup",
    "CannotRead",
    "CopyLineError",
    "TauConnectionError",
    "ConnectionLost",
    "TauTimeout",
    "ProtocolError",
    "error_from_reply",
]


class TauError(Exception):
    """Base class of every error raised by taupy."""


class ServerError(TauError):
    """The server answered ``ERR <message>``.

    Attributes:
        message: the server's text after ``ERR ``.
        raw: the whole reply line, as sent.
        statement: the statement that got this reply, when known.
    """

    def __init__(self, message: str, raw: Optional[str] = None, statement: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.raw = raw if raw is not None else "ERR " + message
        self.statement = statement

    def __str__(self) -> str:
        return self.message


class ParseError(ServerError):
    """``ERR parse error at column <c>: ...``; ``column`` is the 0-based character offset."""

    column: Optional[int]

    def __init__(self, message: str, raw: Optional[str] = None, statement: Optional[str] = None):
        super().__init__(message, raw, statement)
        m = re.match(r"parse error at column (\d+)", message)
        self.column = int(m.group(1)) if m else None


class _Named(ServerError):
    """An error naming one object after ``<prefix>: ``; the name is in ``name``."""

    name: Optional[str]

    def __init__(self, message: str, raw: Optional[str] = None, statement: Optional[str] = None):
        super().__init__(message, raw, statement)
        _, sep, rest = message.partition(": ")
        self.name = rest if sep else None


class NoActiveDatabase(ServerError):
    """``ERR no active database``: run ``use(db)`` first."""


class UnknownDatabase(_Named):
    """``ERR unknown database: <db>``."""


class DuplicateDatabase(_Named):
    """``ERR duplicate database: <db>``."""


class UnknownLens(_Named):
    """``ERR unknown lens: <lens>``."""


class DuplicateLens(_Named):
    """``ERR duplicate lens: <lens>``."""


class UnknownUser(_Named):
    """``ERR unknown user: <user>``."""


class DuplicateUser(_Named):
    """``ERR duplicate user: <user>``."""


class UnknownLayer(_Named):
    """``ERR unknown layer: <id>``."""


class TypeMismatch(ServerError):
    """``ERR type mismatch on <lens>: expected <T>, got <t>``."""


class InvalidRange(ServerError):
    """``ERR invalid range (start >= end)``."""


class OverlappingIntervals(ServerError):
    """``ERR overlapping intervals in one write``."""


class CycleDetected(_Named):
    """``ERR cycle detected in derived lens: <lens>``."""


class InvalidExpression(ServerError):
    """``ERR invalid expression: <why>`` (also division by zero, overflow, ...)."""


class LensInUse(ServerError):
    """``ERR lens <x> is used by derived lens <d>``: DROP LENS refused."""


class PermissionDenied(ServerError):
    """``ERR permission denied: <why>``."""


class AuthenticationError(ServerError):
    """``ERR authentication failed`` / ``ERR authentication required`` (the server closes)."""


class AlreadyAuthenticated(ServerError):
    """``ERR already authenticated``."""


class TransactionError(ServerError):
    """Base class of the transaction errors."""


class TransactionAlreadyActive(TransactionError):
    """``ERR transaction already active``."""


class NoActiveTransaction(TransactionError):
    """``ERR no active transaction``."""


class InvalidInTransaction(TransactionError):
    """``ERR invalid in transaction: <KIND>``."""


class TransactionTooLarge(TransactionError):
    """``ERR transaction too large (at most N statements)``."""


class LineTooLong(ServerError):
    """``ERR line too long`` (the server closes the connection)."""


class ConnectionLimit(ServerError):
    """``ERR server at connection limit`` (the server closes the connection)."""


class ServerBusy(ServerError):
    """``ERR server busy: ...`` (the server closes the connection)."""


class StorageError(ServerError):
    """``ERR storage error: <why>``."""


class DuplicateBackup(_Named):
    """``ERR duplicate backup: <name>``."""


class CannotRead(ServerError):
    """``ERR cannot read <file>: <why>`` (COPY)."""


class CopyLineError(ServerError):
    """``ERR line <n>: <error>`` (COPY); ``line`` is the 1-based line number."""

    line: Optional[int]

    def __init__(self, message: str, raw: Optional[str] = None, statement: Optional[str] = None):
        super().__init__(message, raw, statement)
        m = re.match(r"line (\d+):", message)
        self.line = int(m.group(1)) if m else None


class TauConnectionError(TauError, ConnectionError):
    """The connection could not be made or is no longer usable."""


class ConnectionLost(TauConnectionError):
    """The connection closed or failed before a reply arrived.

    The statement(s) waiting for a reply may or may not have run: this is never a success.
    The client is closed afterwards.
    """


class TauTimeout(TauConnectionError, TimeoutError):
    """No reply within the client's ``timeout``; the client is closed afterwards (the reply
    stream can no longer be matched to statements)."""


class ProtocolError(TauError):
    """A reply line that does not have the shape SPEC gives."""


# Longest prefix first where prefixes overlap.
_PREFIXES: "list[tuple[str, Type[ServerError]]]" = [
    ("parse error", ParseError),
    ("no active database", NoActiveDatabase),
    ("unknown database", UnknownDatabase),
    ("duplicate database", DuplicateDatabase),
    ("unknown lens", UnknownLens),
    ("duplicate lens", DuplicateLens),
    ("unknown user", UnknownUser),
    ("duplicate user", DuplicateUser),
    ("unknown layer", UnknownLayer),
    ("type mismatch", TypeMismatch),
    ("invalid range", InvalidRange),
    ("overlapping intervals", OverlappingIntervals),
    ("cycle detected", CycleDetected),
    ("invalid expression", InvalidExpression),
    ("permission denied", PermissionDenied),
    ("authentication", AuthenticationError),
    ("already authenticated", AlreadyAuthenticated),
    ("transaction already active", TransactionAlreadyActive),
    ("no active transaction", NoActiveTransaction),
    ("invalid in transaction", InvalidInTransaction),
    ("transaction too large", TransactionTooLarge),
    ("line too long", LineTooLong),
    ("server at connection limit", ConnectionLimit),
    ("server busy", ServerBusy),
    ("storage error", StorageError),
    ("duplicate backup", DuplicateBackup),
    ("cannot read", CannotRead),
]

_LENS_IN_USE = re.compile(r"lens \S+ is used by derived lens ")
_COPY_LINE = re.compile(r"line \d+: ")


def error_from_reply(raw: str, statement: Optional[str] = None) -> ServerError:
    """The typed exception for an ``ERR ...`` reply line (``raw`` without its newline)."""
    message = raw[4:] if raw.startswith("ERR ") else raw[3:]
    for prefix, cls in _PREFIXES:
        if message.startswith(prefix):
            return cls(message, raw, statement)
    if _LENS_IN_USE.match(message):
        return LensInUse(message, raw, statement)
    if _COPY_LINE.match(message):
        return CopyLineError(message, raw, statement)
    return ServerError(message, raw, statement)
