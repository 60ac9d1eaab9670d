"""Statement builders and reply parsers shared by the sync and asyncio clients.

Nothing here does IO. Builders return one TauQL statement without its newline; parsers
take one reply line without its newline.
"""

from __future__ import annotations

import datetime as _dt
import functools
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from .errors import ProtocolError, ServerError, error_from_reply
from .values import (
    Value,
    check_name,
    decode_value,
    literal,
    ms_literal,
    ms_to_datetime,
    string_literal,
    time_literal,
)

__all__ = [
    "Reply",
    "Piece",
    "Layer",
    "RangeResult",
    "LENS_TYPES",
    "REDUCE_FUNCTIONS",
]

LENS_TYPES = ("int", "float", "str", "bool", "bytes")
"""The lens types of CREATE LENS."""

REDUCE_FUNCTIONS = (
    "min", "max", "sum", "count", "avg", "twavg", "integral", "duration", "first", "last",
)
"""The fold functions of REDUCE."""

_KINDS = ("OK", "VAL", "RANGE", "NAMES", "LAYERS", "GRANTS", "STATUS", "ERR")


class Piece(NamedTuple):
    """One visible piece of a RANGE reply: the value over ``[start, end)``."""

    start: int
    end: int
    value: Value


class Layer(NamedTuple):
    """One HISTORY entry: a committed layer of a base lens."""

    layer: int
    """The layer id."""
    written_at: int
    """Wall-clock ms of the commit (UTC); see :attr:`written_at_datetime`."""
    min_start: int
    max_end: int

    @property
    def written_at_datetime(self) -> _dt.datetime:
        """``written_at`` as a timezone-aware UTC ``datetime``."""
        return ms_to_datetime(self.written_at)


class RangeResult(List[Piece]):
    """The pieces of a RANGE reply, in time order (a ``list`` of :class:`Piece`)."""

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with columns ``start``, ``end`` (int64) and ``value``
        (typed by the values; see :func:`taupy.pandas_support.frame`)."""
        from .pandas_support import frame_from_pieces

        return frame_from_pieces(self)

    def to_numpy(self) -> Tuple[Any, Any, Any]:
        """``(starts, ends, values)`` as NumPy arrays (values typed like ``to_pandas``)."""
        from .pandas_support import arrays_from_pieces

        return arrays_from_pieces(self)


class Reply:
    """One reply line, parsed.

    Attributes:
        raw: the line exactly as the server sent it (without ``\\n``).
        kind: ``OK``, ``VAL``, ``RANGE``, ``NAMES``, ``LAYERS``, ``GRANTS``, ``STATUS`` or
            ``ERR``.
    """

    __slots__ = ("raw", "kind", "_rest")

    def __init__(self, raw: str):
        self.raw = raw
        head, _, rest = raw.partition(" ")
        if head not in _KINDS:
            raise ProtocolError(f"unexpected reply: {raw[:200]!r}")
        self.kind = head
        self._rest = rest

    def __repr__(self) -> str:
        r = self.raw if len(self.raw) <= 120 else self.raw[:117] + "..."
        return f"Reply({r!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reply) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    @property
    def ok(self) -> bool:
        """True unless this is an ``ERR`` reply."""
        return self.kind != "ERR"

    @property
    def message(self) -> str:
        """The text after ``OK `` (e.g. ``BYE``) or ``ERR ``; empty otherwise."""
        return self._rest if self.kind in ("OK", "ERR") else ""

    def error(self) -> Optional[ServerError]:
        """The typed exception for an ``ERR`` reply, ``None`` otherwise."""
        return error_from_reply(self.raw) if self.kind == "ERR" else None

    def raise_for_error(self) -> "Reply":
        """Raise the typed exception if this is an ``ERR`` reply; return ``self``."""
        if self.kind == "ERR":
            raise error_from_reply(self.raw)
        return self

    @property
    def value(self) -> Any:
        """The decoded payload: VAL → value (``None`` for NIL), RANGE → :class:`RangeResult`,
        NAMES → ``list[str]``, LAYERS → ``list[Layer]``, GRANTS → ``dict``, STATUS →
        ``dict``, OK → its message, ERR → ``None``."""
        k = self.kind
        if k == "VAL":
            return parse_val(self.raw)
        if k == "RANGE":
            return parse_range(self.raw)
        if k == "NAMES":
            return parse_names(self.raw)
        if k == "LAYERS":
            return parse_layers(self.raw)
        if k == "GRANTS":
            return parse_grants(self.raw)
        if k == "STATUS":
            return parse_status(self.raw)
        if k == "OK":
            return self._rest
        return None


# ------------------------------------------------------------------ reply parsers


def _bad(raw: str, what: str) -> ProtocolError:
    return ProtocolError(f"malformed {what} reply: {raw[:200]!r}")


def check(raw: str, statement: Optional[str] = None) -> str:
    """Raise the typed exception for an ``ERR`` line; return the line otherwise."""
    if raw.startswith("ERR"):
        raise error_from_reply(raw, statement)
    return raw


def parse_ok(raw: str, statement: Optional[str] = None) -> None:
    """Expect ``OK``."""
    if raw == "OK":
        return
    check(raw, statement)
    raise _bad(raw, "OK")


def parse_val(raw: str, statement: Optional[str] = None) -> Optional[Value]:
    """``VAL <v>`` → the value; ``VAL NIL`` → ``None``."""
    if raw.startswith("VAL "):
        tok = raw[4:]
        if tok == "NIL":
            return None
        return decode_value(tok)
    check(raw, statement)
    raise _bad(raw, "VAL")


def _counted(raw: str, kind: str, statement: Optional[str]) -> List[str]:
    if not raw.startswith(kind + " "):
        check(raw, statement)
        raise _bad(raw, kind)
    parts = raw[len(kind) + 1:].split("; ")
    try:
        n = int(parts[0])
    except ValueError:
        raise _bad(raw, kind) from None
    items = parts[1:]
    if len(items) != n:
        raise _bad(raw, kind)
    return items


def range_columns(raw: str, statement: Optional[str] = None) -> Tuple[List[int], List[int], List[Any], str]:
    """Split a ``RANGE`` line into ``(starts, ends, values, kind)``.

    ``kind`` is ``"f"`` or ``"i"`` when every value is a float or an int (then ``values``
    holds them decoded), ``""`` when there are no pieces, and ``"mixed"`` otherwise (values
    decoded one by one, nulls as :data:`~taupy.values.Null`). Fast: the splitting and number
    conversion run in C.
    """
    if not raw.startswith("RANGE "):
        check(raw, statement)
        raise _bad(raw, "RANGE")
    head, sep, body = raw.partition("; ")
    try:
        n = int(head[6:])
    except ValueError:
        raise _bad(raw, "RANGE") from None
    if n == 0:
        if sep:
            raise _bad(raw, "RANGE")
        return [], [], [], ""
    kind = "mixed"
    # A string value has ':' and ';' escaped, and start/end are ints, so ":f" can only
    # begin a value: n of them means every value is a float.
    if body.count(":f") == n:
        kind = "f"
        body = body.replace(":f", ":")
    elif body.count(":i") == n:
        kind = "i"
        body = body.replace(":i", ":")
    parts = body.replace("; ", ":").split(":")
    if len(parts) != 3 * n:
        raise _bad(raw, "RANGE")
    try:
        starts = list(map(int, parts[0::3]))
        ends = list(map(int, parts[1::3]))
        if kind == "f":
            values: List[Any] = list(map(float, parts[2::3]))
        elif kind == "i":
            values = list(map(int, parts[2::3]))
        else:
            values = list(map(decode_value, parts[2::3]))
    except ValueError:
        raise _bad(raw, "RANGE") from None
    return starts, ends, values, kind


def parse_range(raw: str, statement: Optional[str] = None) -> RangeResult:
    """``RANGE n; s:e:v; ...`` → :class:`RangeResult`."""
    starts, ends, values, _ = range_columns(raw, statement)
    return RangeResult(map(Piece, starts, ends, values))


def _npfast() -> Any:
    try:
        from . import npfast
    except ImportError:  # no NumPy
        return None
    return npfast


def parse_range_bytes(line: bytes, statement: Optional[str] = None) -> RangeResult:
    """:func:`parse_range` for the undecoded line; all-float and all-int replies are parsed
    column-wise with NumPy when it is installed."""
    if line.startswith(b"RANGE ") and (line.count(b":f") > 1000 or line.count(b":i") > 1000):
        fast = _npfast()
        got = fast.range_arrays(line) if fast is not None else None
        if got is not None:
            s, e, v, _ = got
            return RangeResult(map(Piece, s.tolist(), e.tolist(), v.tolist()))
    return parse_range(line.decode("utf-8"), statement)


def parse_names(raw: str, statement: Optional[str] = None) -> List[str]:
    """``NAMES n; a; b`` → ``["a", "b"]``."""
    return _counted(raw, "NAMES", statement)


def parse_layers(raw: str, statement: Optional[str] = None) -> List[Layer]:
    """``LAYERS n; id:written_at:min:max; ...`` → list of :class:`Layer`."""
    out = []
    for it in _counted(raw, "LAYERS", statement):
        p = it.split(":")
        if len(p) != 4:
            raise _bad(raw, "LAYERS")
        try:
            out.append(Layer(int(p[0]), int(p[1]), int(p[2]), int(p[3])))
        except ValueError:
            raise _bad(raw, "LAYERS") from None
    return out


def parse_grants(raw: str, statement: Optional[str] = None) -> Dict[str, Dict[str, str]]:
    """``GRANTS n; user db:perms db:perms; ...`` → ``{user: {db: perms}}``."""
    out: Dict[str, Dict[str, str]] = {}
    for it in _counted(raw, "GRANTS", statement):
        words = it.split(" ")
        if not words[0]:
            raise _bad(raw, "GRANTS")
        grants: Dict[str, str] = {}
        for w in words[1:]:
            db, sep, perms = w.partition(":")
            if not sep:
                raise _bad(raw, "GRANTS")
            grants[db] = perms
        out[words[0]] = grants
    return out


def parse_status(raw: str, statement: Optional[str] = None) -> Dict[str, str]:
    """``STATUS n; key:value; ...`` → ``{key: value}``."""
    out: Dict[str, str] = {}
    for it in _counted(raw, "STATUS", statement):
        k, sep, v = it.partition(":")
        if not sep:
            raise _bad(raw, "STATUS")
        out[k] = v
    return out


# ------------------------------------------------------------------ statement builders

TimeLike = Union[int, str, _dt.datetime]


def _selector(as_of: Optional[TimeLike], layer: Optional[int]) -> str:
    if as_of is not None and layer is not None:
        raise ValueError("give as_of or layer, not both")
    if as_of is not None:
        return " AS OF " + time_literal(as_of)
    if layer is not None:
        return " LAYER " + ms_literal(layer, "layer")
    return ""


@functools.lru_cache(maxsize=1024)
def _lens(name: str) -> str:
    return check_name(name, "lens")


def at(lens: str, t: int, as_of: Optional[TimeLike], layer: Optional[int]) -> str:
    if type(t) is int and as_of is None and layer is None and type(lens) is str:
        return "AT LENS " + _lens(lens) + " " + str(t)  # the hot path
    return f"AT LENS {check_name(lens, 'lens')} {ms_literal(t, 't')}{_selector(as_of, layer)}"


def range_(
    lens: str,
    start: int,
    end: int,
    as_of: Optional[TimeLike],
    layer: Optional[int],
    where: Optional[str],
    limit: Optional[int],
    offset: Optional[int],
) -> str:
    s = (
        f"RANGE LENS {check_name(lens, 'lens')} {ms_literal(start, 'start')} "
        f"{ms_literal(end, 'end')}{_selector(as_of, layer)}"
    )
    if where is not None:
        s += " WHERE " + one_line(where, "where")
    if limit is not None:
        s += " LIMIT " + ms_literal(limit, "limit")
    if offset is not None:
        s += " OFFSET " + ms_literal(offset, "offset")
    return s


def reduce(
    lens: str, start: int, end: int, fn: str, as_of: Optional[TimeLike], layer: Optional[int]
) -> str:
    f = fn.lower() if isinstance(fn, str) else fn
    if f not in REDUCE_FUNCTIONS:
        raise ValueError(f"unknown REDUCE function {fn!r}; one of {', '.join(REDUCE_FUNCTIONS)}")
    return (
        f"REDUCE LENS {check_name(lens, 'lens')} {ms_literal(start, 'start')} "
        f"{ms_literal(end, 'end')}{_selector(as_of, layer)} USING {f}"
    )


def history(lens: str, start: Optional[int], end: Optional[int]) -> str:
    s = f"HISTORY LENS {check_name(lens, 'lens')}"
    if (start is None) != (end is None):
        raise ValueError("give both start and end, or neither")
    if start is not None and end is not None:
        s += f" {ms_literal(start, 'start')} {ms_literal(end, 'end')}"
    return s


def row_text(row: Sequence[Any]) -> str:
    if len(row) != 3:
        raise ValueError(f"a row is (start, end, value), got {row!r}")
    return f"{ms_literal(row[0], 'start')} {ms_literal(row[1], 'end')} {literal(row[2])}"


def append(lens: str, rows: Iterable[Sequence[Any]]) -> Optional[str]:
    body = ", ".join(map(row_text, rows))
    if not body:
        return None
    return f"APPEND LENS {check_name(lens, 'lens')} {body}"


def lens_type(t: Any) -> str:
    if isinstance(t, type):
        names = {int: "int", float: "float", str: "str", bool: "bool", bytes: "bytes"}
        if t in names:
            return names[t]
    if isinstance(t, str) and t.lower() in LENS_TYPES:
        return t.lower()
    raise ValueError(f"lens type must be one of {', '.join(LENS_TYPES)}, got {t!r}")


def one_line(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} must be one line")
    return text


def perms(p: str) -> str:
    p = p.strip()
    if p != "*" and (not p or any(c not in "CRUDAcruda " for c in p)):
        raise ValueError(f"permissions are letters of CRUDA, or '*', got {p!r}")
    return p


def db_or_star(db: str) -> str:
    return "*" if db == "*" else check_name(db, "database")


def dedent_expr(expr: str) -> str:
    return one_line(expr.strip(), "expression")


def grant(p: str, db: str, user: str) -> str:
    return f"GRANT {perms(p)} ON {db_or_star(db)} TO {check_name(user, 'user')}"


def revoke(p: str, db: str, user: str) -> str:
    return f"REVOKE {perms(p)} ON {db_or_star(db)} FROM {check_name(user, 'user')}"


def auth(user: str, password: str) -> str:
    return f"AUTH {check_name(user, 'user')} {string_literal(password)}"
