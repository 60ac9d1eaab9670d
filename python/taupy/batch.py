"""Cutting columns of rows into ``BATCH APPEND`` statements, fast.

The encoder turns whole chunks of rows into text with C-level loops (``str`` of a list of
tuples, ``str.replace``), which is several times faster than formatting row by row in
Python. Values must be one kind per batch for the fast path (all floats or all ints);
anything else goes through :func:`taupy.values.literal` row by row.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, List, Sequence, Tuple

from .values import check_name, literal, ms_literal

__all__ = ["Columns", "columns", "statements"]

DEFAULT_CHUNK_ROWS = 20_000
"""Rows per BATCH APPEND statement."""

DEFAULT_MAX_STATEMENT_BYTES = 1_000_000
"""Longest statement sent; the server's default ``max_line_bytes`` is 1 MiB."""


class Columns:
    """Three equal-length columns as Python lists, with the values' kind:
    ``"f"`` (all finite floats), ``"i"`` (all ints, no bools) or ``""`` (anything)."""

    __slots__ = ("starts", "ends", "values", "kind")

    def __init__(self, starts: List[int], ends: List[int], values: List[Any], kind: str):
        self.starts = starts
        self.ends = ends
        self.values = values
        self.kind = kind

    def __len__(self) -> int:
        return len(self.starts)


def _ints(col: Any, what: str) -> List[int]:
    kind = getattr(getattr(col, "dtype", None), "kind", None)
    if kind in ("i", "u"):
        out: List[int] = col.tolist()
        return out
    if kind is not None:
        raise TypeError(f"{what} must hold integers, got an array of dtype {col.dtype}")
    lst = list(col)
    if all(type(x) is int for x in lst):
        return lst
    return [int(ms_literal(x, what)) for x in lst]


def columns(starts: Any, ends: Any, values: Any) -> Columns:
    """Normalise lists, tuples or NumPy arrays (or pandas Series) into :class:`Columns`."""
    s = _ints(starts, "starts")
    e = _ints(ends, "ends")
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    vkind = ""
    if kind == "f":
        import numpy as np

        arr = np.asarray(values)
        if not bool(np.isfinite(arr).all()):
            raise ValueError("Tau stores only finite floats: values holds NaN or infinity")
        v: List[Any] = arr.astype(np.float64, copy=False).tolist()
        vkind = "f"
    elif kind in ("i", "u"):
        v = values.tolist()
        vkind = "i"
    elif kind == "b":
        v = values.tolist()
    elif kind is not None:
        v = values.tolist()  # object arrays: decide like a list
        kind = None
    else:
        v = list(values)
    if kind is None and v:
        if all(type(x) is float for x in v):
            if not all(map(math.isfinite, v)):
                raise ValueError("Tau stores only finite floats: values holds NaN or infinity")
            vkind = "f"
        elif all(type(x) is int for x in v):
            vkind = "i"
    if not (len(s) == len(e) == len(v)):
        raise ValueError(f"starts, ends and values differ in length ({len(s)}, {len(e)}, {len(v)})")
    return Columns(s, e, v, vkind)


def body(starts: Sequence[int], ends: Sequence[int], values: Sequence[Any], kind: str) -> str:
    """The ``s e v; s e v`` text of rows."""
    if kind in ("f", "i"):
        # repr of a list of (int, int, number) tuples, all in C: "[(0, 10, 1.5), (10, ...)]"
        text = str(list(zip(starts, ends, values)))
        return text[2:-2].replace("), (", "; ").replace(", ", " ")
    return "; ".join(
        [f"{s} {e} {literal(v)}" for s, e, v in zip(starts, ends, values)]
    )


def statements(
    lens: str,
    cols: Columns,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_bytes: int = DEFAULT_MAX_STATEMENT_BYTES,
) -> Iterator[Tuple[str, int]]:
    """Yield ``(statement, rows)`` pairs: BATCH APPEND statements of at most ``chunk_rows``
    rows and ``max_bytes`` bytes, in order."""
    check_name(lens, "lens")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    head = f"BATCH APPEND LENS {lens} {{ "
    n = len(cols)

    def encode(lo: int, hi: int) -> Iterator[Tuple[str, int]]:
        stmt = head + body(cols.starts[lo:hi], cols.ends[lo:hi], cols.values[lo:hi], cols.kind) + " }"
        size = len(stmt) if stmt.isascii() else len(stmt.encode())
        if size <= max_bytes or hi - lo == 1:
            # (a single row over the limit is sent anyway: the server names the error)
            yield stmt, hi - lo
            return
        mid = (lo + hi) // 2
        yield from encode(lo, mid)
        yield from encode(mid, hi)

    for lo in range(0, n, chunk_rows):
        yield from encode(lo, min(n, lo + chunk_rows))
