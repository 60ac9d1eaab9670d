"""Values: the wire encoding (SPEC "Value encoding") and TauQL literals.

Reading (server -> Python):

=============  ==========================
wire           Python
=============  ==========================
``i42``        ``int`` 42
``f18.5``      ``float`` 18.5
``sa%20b``     ``str`` ``"a b"``
``b1``/``b0``  ``True``/``False``
``x0aff``      ``bytes`` ``b"\\x0a\\xff"``
``n``          :data:`Null` (a stored null)
``NIL``        ``None`` (nothing stored there)
=============  ==========================

Writing (Python -> TauQL literal): ``bool``, ``int``, ``float`` (finite), ``str`` (no
newline), ``bytes``/``bytearray``/``memoryview``, NumPy scalars of those kinds, and
:data:`Null` or ``None`` for a stored null.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any, Union
from urllib.parse import unquote_to_bytes

from .errors import ProtocolError

__all__ = [
    "Null",
    "NullType",
    "Value",
    "decode_value",
    "literal",
    "string_literal",
    "ms_literal",
    "time_literal",
    "datetime_to_ms",
    "ms_to_datetime",
    "rfc3339_to_ms",
    "check_name",
]


class NullType:
    """The type of :data:`Null`, the stored SQL-style null (wire ``n``).

    It is distinct from ``None``, which taupy uses for NIL ("nothing stored here").
    There is exactly one instance; compare with ``is Null``. It is falsy.
    """

    _instance: "NullType | None" = None

    def __new__(cls) -> "NullType":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Null"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "Null"


Null = NullType()
"""The stored null value (wire ``n``); distinct from ``None`` (NIL)."""

Value = Union[int, float, str, bool, bytes, NullType]
"""A decoded lens value."""

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_KEYWORD_NAMES = {"true", "false", "null"}


def decode_value(tok: str) -> Value:
    """Decode one wire value (``i42``, ``f1.5``, ``sa%20b``, ``b1``, ``x0aff``, ``n``).

    Raises :class:`~taupy.errors.ProtocolError` for anything else.
    """
    try:
        c = tok[0]
        if c == "f":
            return float(tok[1:])
        if c == "i":
            return int(tok[1:])
        if c == "s":
            s = tok[1:]
            if "%" not in s:
                return s
            return unquote_to_bytes(s).decode("utf-8")
        if c == "b":
            if tok == "b1":
                return True
            if tok == "b0":
                return False
        elif c == "x":
            return bytes.fromhex(tok[1:])
        elif tok == "n":
            return Null
    except (ValueError, IndexError) as e:
        raise ProtocolError(f"undecodable value {tok!r}") from e
    raise ProtocolError(f"undecodable value {tok!r}")


def string_literal(s: str) -> str:
    """A TauQL string literal ``"..."`` with ``\\"`` and ``\\\\`` escapes.

    Raises ``ValueError`` for a string holding a newline or carriage return, which no
    statement line can carry.
    """
    if "\n" in s or "\r" in s:
        raise ValueError("a TauQL string literal cannot hold a newline or carriage return")
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _float_literal(f: float) -> str:
    if not math.isfinite(f):
        raise ValueError(f"Tau stores only finite floats, got {f!r}")
    return repr(float(f))


def literal(v: Any) -> str:
    """The TauQL literal for a Python (or NumPy scalar) value.

    ``None`` and :data:`Null` both give ``null``. Raises ``TypeError`` for a value of any
    other type and ``ValueError`` for a NaN/infinite float or a string with a newline.
    """
    if v is None or v is Null:
        return "null"
    t = type(v)
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        return _float_literal(v)
    if t is str:
        return string_literal(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return _float_literal(v)
    if isinstance(v, str):
        return string_literal(v)
    kind = getattr(getattr(v, "dtype", None), "kind", None)  # NumPy scalars
    if kind == "b":
        return "true" if bool(v) else "false"
    if kind in ("i", "u"):
        return str(int(v))
    if kind == "f":
        return _float_literal(float(v))
    raise TypeError(f"no TauQL literal for a value of type {t.__name__}")


def datetime_to_ms(d: _dt.datetime) -> int:
    """Milliseconds since the Unix epoch for a timezone-aware ``datetime`` (exact, floored).

    A naive ``datetime`` raises ``ValueError``: Tau's clock is UTC and guessing a zone
    would silently shift AS OF by hours.
    """
    if d.tzinfo is None or d.tzinfo.utcoffset(d) is None:
        raise ValueError("a naive datetime is ambiguous: give it a tzinfo (e.g. timezone.utc)")
    return (d - _EPOCH) // _dt.timedelta(milliseconds=1)


def ms_to_datetime(ms: int) -> _dt.datetime:
    """The UTC ``datetime`` for milliseconds since the Unix epoch."""
    return _EPOCH + _dt.timedelta(milliseconds=ms)


def ms_literal(t: Any, what: str = "time") -> str:
    """An int literal for a time point (``int`` or an integral NumPy scalar)."""
    if isinstance(t, bool):
        raise TypeError(f"{what} must be an int, got bool")
    if isinstance(t, int):
        return str(int(t))
    if getattr(getattr(t, "dtype", None), "kind", None) in ("i", "u"):
        return str(int(t))
    raise TypeError(f"{what} must be an int, got {type(t).__name__}")


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


def rfc3339_to_ms(s: str) -> int:
    """Milliseconds since the Unix epoch for an RFC 3339 timestamp such as
    ``2026-12-06T10:00:00Z`` or ``2026-12-06T10:00:00.250+01:00`` (a zone is required;
    digits below the millisecond are dropped, rounding toward the past).

    Raises ``ValueError`` for anything else.
    """
    m = _RFC3339.match(s.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp with a zone: {s!r}")
    y, mo, d, h, mi, sec, frac, z, sign, oh, om = m.groups()
    tz = _dt.timezone.utc
    if z is None:
        off = _dt.timedelta(hours=int(oh), minutes=int(om))
        tz = _dt.timezone(-off if sign == "-" else off)
    when = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), tzinfo=tz)
    ms = int(((frac or "") + "000")[:3])
    return datetime_to_ms(when) + ms


def time_literal(t: Any) -> str:
    """A literal for ``AS OF``: int ms, an aware ``datetime`` or an RFC 3339 string (both
    converted to exact ms on the client, so any server version understands them)."""
    if isinstance(t, _dt.datetime):
        return str(datetime_to_ms(t))
    if isinstance(t, str):
        return str(rfc3339_to_ms(t))
    return ms_literal(t, "as_of")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a TauQL identifier, else raise ``ValueError`` (so that no
    name can smuggle extra syntax into a statement)."""
    if not isinstance(name, str) or not _NAME.match(name) or name.lower() in _KEYWORD_NAMES:
        raise ValueError(f"invalid {what}: {name!r} (expected [A-Za-z_][A-Za-z0-9_]*)")
    return name
