"""Cutting columns of rows into ``BATCH APPEND`` statements, fast.

The encoder turns whole chunks of rows into text with one ``%``-format per chunk, so every
conversion runs in C, which is several times faster than formatting row by row in Python. Values must be one kind per batch for the fast path (all floats or all ints);
anything else goes through :func:`taupy.values.literal` row by row.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any, Iterator, List, Sequence, Tuple

from .values import check_name, literal, ms_literal

__all__ = ["Columns", "columns", "statements"]

DEFAULT_CHUNK_ROWS = 20_000
"""Rows per BATCH APPEND statement."""

DEFAULT_MAX_STATEMENT_BYTES = 1_000_000
"""Longest statement sent; the server's default ``max_line_bytes`` is 1 MiB."""


# %r of a float is its shortest round-trip form (what the server itself sends).
_ROW_F = "%d %d %r; "
_ROW_I = "%d %d %d; "


class Columns:
    """Three equal-length columns (lists, or int64/float64 NumPy arrays), with the values' kind:
    ``"f"`` (all finite floats), ``"i"`` (all ints, no bools) or ``""`` (anything)."""

    __slots__ = ("starts", "ends", "values", "kind")

    def __init__(self, starts: Any, ends: Any, values: Any, kind: str):
        self.starts = starts
        self.ends = ends
        self.values = values
        self.kind = kind

    def __len__(self) -> int:
        return len(self.starts)


def _ints(col: Any, what: str) -> Any:
    """An int column: an int64 NumPy array stays one; anything else becomes a list of int."""
    kind = getattr(getattr(col, "dtype", None), "kind", None)
    if kind in ("i", "u"):
        np = _numpy()
        if np is not None and kind == "u" and len(col) and int(col.max()) > 2**63 - 1:
            raise ValueError(f"{what} holds values beyond the int64 range")
        return np.asarray(col, dtype=np.int64) if np is not None else col.tolist()
    if kind is not None:
        raise TypeError(f"{what} must hold integers, got an array of dtype {col.dtype}")
    lst = list(col)
    if all(type(x) is int for x in lst):
        return lst
    return [int(ms_literal(x, what)) for x in lst]


def _as_list(col: Any) -> List[Any]:
    return col.tolist() if hasattr(col, "tolist") else list(col)


def columns(starts: Any, ends: Any, values: Any) -> Columns:
    """Normalise lists, tuples or NumPy arrays (or pandas Series) into :class:`Columns`.
    Int and float NumPy columns stay arrays (the fast path); everything else is a list."""
    s = _ints(starts, "starts")
    e = _ints(ends, "ends")
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    vkind = ""
    v: Any
    if kind == "f":
        import numpy as np

        v = np.asarray(values, dtype=np.float64)
        if not bool(np.isfinite(v).all()):
            raise ValueError("Tau stores only finite floats: values holds NaN or infinity")
        vkind = "f"
    elif kind in ("i", "u"):
        import numpy as np

        if kind == "u" and len(values) and int(values.max()) > 2**63 - 1:
            raise ValueError("values holds integers beyond the int64 range")
        v = np.asarray(values, dtype=np.int64)
        vkind = "i"
    elif kind is not None:
        v = values.tolist()  # bool and object arrays: decided like a list
        kind = None
    else:
        v = list(values)
    if kind is None and v:
        if all(type(x) is float for x in v):
            if not all(map(math.isfinite, v)):
                raise ValueError("Tau stores only finite floats: values holds NaN or infinity")
            vkind = "f"
        elif all(type(x) is int for x in v) and all(-(2**63) <= x < 2**63 for x in v):
            vkind = "i"
    if not (len(s) == len(e) == len(v)):
        raise ValueError(f"starts, ends and values differ in length ({len(s)}, {len(e)}, {len(v)})")
    return Columns(s, e, v, vkind)


def body(starts: Sequence[int], ends: Sequence[int], values: Sequence[Any], kind: str) -> str:
    """The ``s e v; s e v`` text of rows."""
    if kind in ("f", "i"):
        # One %-format over the flattened rows: every conversion runs in C.
        n = len(starts)
        fmt = _ROW_F if kind == "f" else _ROW_I
        return ((fmt * n) % tuple(chain.from_iterable(zip(starts, ends, values))))[:-2]
    return "; ".join(
        [f"{s} {e} {literal(v)}" for s, e, v in zip(starts, ends, values)]
    )


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def statements(
    lens: str,
    cols: Columns,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_bytes: int = DEFAULT_MAX_STATEMENT_BYTES,
) -> Iterator[Tuple[bytes, int]]:
    """Yield ``(statement, rows)`` pairs: ``\n``-terminated BATCH APPEND statements (UTF-8)
    of at most ``chunk_rows`` rows and ``max_bytes`` bytes, in row order.

    All-float and all-int columns are formatted column-wise with NumPy when it is
    installed (:mod:`taupy.npfast`), otherwise with one ``%``-format per chunk."""
    check_name(lens, "lens")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    head = f"BATCH APPEND LENS {lens} {{ ".encode()
    tail = b" }\n"
    n = len(cols)
    np = _numpy() if cols.kind in ("f", "i") else None
    if np is not None:
        from . import npfast

        s_arr = np.asarray(cols.starts, dtype=np.int64)
        e_arr = np.asarray(cols.ends, dtype=np.int64)
        v_arr = np.asarray(cols.values, dtype=np.float64 if cols.kind == "f" else np.int64)

    def encode(lo: int, hi: int) -> Iterator[Tuple[bytes, int]]:
        if np is not None:
            got = npfast.rows_text(s_arr[lo:hi], e_arr[lo:hi], v_arr[lo:hi], cols.kind)
            if got is not None:
                m, width = got
                per = max(1, (max_bytes - len(head) - len(tail) + 2) // width)
                for a in range(0, hi - lo, per):
                    part = m[a : a + per]
                    yield head + part.tobytes()[:-2] + tail, len(part)
                return
        rows = body(_as_list(cols.starts[lo:hi]), _as_list(cols.ends[lo:hi]), _as_list(cols.values[lo:hi]), cols.kind)
        stmt = head + rows.encode() + tail
        if len(stmt) - 1 <= max_bytes or hi - lo == 1:
            # (a single row over the limit is sent anyway: the server names the error)
            yield stmt, hi - lo
            return
        mid = (lo + hi) // 2
        yield from encode(lo, mid)
        yield from encode(mid, hi)

    for lo in range(0, n, chunk_rows):
        yield from encode(lo, min(n, lo + chunk_rows))
