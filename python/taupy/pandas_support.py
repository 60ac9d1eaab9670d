"""NumPy / pandas conversion of RANGE results (needs the ``numpy`` / ``pandas`` extras).

Column types: ``start`` and ``end`` are ``int64``; ``value`` is ``float64``, ``int64``,
``bool``, ``string`` (pandas ``StringDtype``, for str) or ``object`` (``bytes``). Where a
stored null occurs, a numeric or bool value column uses the pandas nullable dtype instead
(``Float64``, ``Int64``, ``boolean``); nulls are ``<NA>`` (``None`` in an ``object``
column). An empty result has an ``object`` value column.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from .protocol import range_columns
from .values import Null

__all__ = ["frame_from_line", "frame_from_raw", "frame_from_pieces", "arrays_from_pieces", "frame", "value_array"]


def _np() -> Any:
    try:
        import numpy
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("this needs NumPy: pip install 'tau-py[numpy]'") from e
    return numpy


def _pd() -> Any:
    try:
        import pandas
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("this needs pandas: pip install 'tau-py[pandas]'") from e
    return pandas


def value_array(values: List[Any], kind: str, nullable: bool) -> Any:
    """The value column for decoded values (``kind`` as :func:`range_columns` gives it).

    With ``nullable`` (pandas) a column holding nulls gets a pandas nullable dtype;
    without it (plain NumPy) such a column is an ``object`` array with ``None``.
    """
    np = _np()
    if kind == "f":
        return np.array(values, dtype=np.float64)
    if kind == "i":
        return np.array(values, dtype=np.int64)
    types = {type(v) for v in values}
    has_null = type(Null) in types
    types.discard(type(Null))
    if not has_null:
        if types == {float}:
            return np.array(values, dtype=np.float64)
        if types == {int}:
            return np.array(values, dtype=np.int64)
        if types == {bool}:
            return np.array(values, dtype=np.bool_)
    cleaned = [None if v is Null else v for v in values]
    if nullable and len(types) == 1:
        pd = _pd()
        t = next(iter(types))
        if t is str:
            return pd.array(cleaned, dtype="string")
        dtype = {float: "Float64", int: "Int64", bool: "boolean"}.get(t)
        if dtype is not None and has_null:
            return pd.array(cleaned, dtype=dtype)
    arr = np.empty(len(cleaned), dtype=object)
    arr[:] = cleaned
    return arr


def frame(starts: Sequence[int], ends: Sequence[int], values: List[Any], kind: str) -> Any:
    """A DataFrame from decoded columns."""
    np = _np()
    pd = _pd()
    return pd.DataFrame(
        {
            "start": np.array(starts, dtype=np.int64),
            "end": np.array(ends, dtype=np.int64),
            "value": value_array(values, kind, True),
        },
        copy=False,
    )


def frame_from_raw(raw: str, statement: Optional[str] = None) -> Any:
    """A DataFrame straight from a ``RANGE`` reply line (the fast path of ``range_df``)."""
    starts, ends, values, kind = range_columns(raw, statement)
    return frame(starts, ends, values, kind)


def frame_from_arrays(starts: Any, ends: Any, values: Any, kind: str = "") -> Any:
    """A DataFrame from int64 start/end arrays and a typed value array."""
    pd = _pd()
    return pd.DataFrame({"start": starts, "end": ends, "value": values}, copy=False)


def frame_from_line(line: bytes, statement: Optional[str] = None) -> Any:
    """A DataFrame from an undecoded ``RANGE`` line: all-float and all-int replies are
    parsed column-wise (:mod:`taupy.npfast`), anything else value by value."""
    from . import npfast

    got = npfast.range_arrays(line)
    if got is not None:
        pd = _pd()
        s, e, v, _ = got
        return pd.DataFrame({"start": s, "end": e, "value": v}, copy=False)
    return frame_from_raw(line.decode("utf-8"), statement)


def _columns(pieces: Sequence[Tuple[int, int, Any]]) -> Tuple[List[int], List[int], List[Any], str]:
    starts = [p[0] for p in pieces]
    ends = [p[1] for p in pieces]
    values = [p[2] for p in pieces]
    kind = ""
    if values and all(type(v) is float for v in values):
        kind = "f"
    elif values and all(type(v) is int for v in values):
        kind = "i"
    return starts, ends, values, kind


def frame_from_pieces(pieces: Sequence[Tuple[int, int, Any]]) -> Any:
    """A DataFrame from a list of ``(start, end, value)`` pieces."""
    return frame(*_columns(pieces))


def arrays_from_pieces(pieces: Sequence[Tuple[int, int, Any]]) -> Tuple[Any, Any, Any]:
    """``(starts, ends, values)`` NumPy arrays from a list of pieces."""
    np = _np()
    s, e, v, kind = _columns(pieces)
    return np.array(s, dtype=np.int64), np.array(e, dtype=np.int64), value_array(v, kind, False)
