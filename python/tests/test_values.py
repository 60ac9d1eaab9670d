"""Unit tests of the encodings and reply parsers (no server)."""

from __future__ import annotations

import datetime as dt
import math
import pickle

import pytest

import taupy
from taupy import errors
from taupy import protocol as P
from taupy.batch import Columns, columns, statements
from taupy.values import Null, decode_value, literal, ms_to_datetime, datetime_to_ms, time_literal


@pytest.mark.parametrize(
    "wire, value",
    [
        ("i42", 42),
        ("i-9223372036854775808", -(2**63)),
        ("f18.5", 18.5),
        ("f20", 20.0),
        ("f0.30000000000000004", 0.1 + 0.2),
        ("f-0", -0.0),
        ("f100000000000000000000", 1e20),
        ("sa%20b%3Ac%3Bd%25e%0Af", "a b:c;d%e\nf"),
        ("s%0D", "\r"),
        ("sé%20ü", "é ü"),
        ("s", ""),
        ("b1", True),
        ("b0", False),
        ("x0aff", b"\x0a\xff"),
        ("x", b""),
    ],
)
def test_decode_value(wire: str, value: object) -> None:
    got = decode_value(wire)
    assert got == value
    assert type(got) is type(value)


def test_null_is_distinct_from_none() -> None:
    assert decode_value("n") is Null
    assert Null is not None
    assert not Null
    assert repr(Null) == "Null"
    assert taupy.NullType() is Null
    assert pickle.loads(pickle.dumps(Null)) is Null
    assert P.parse_val("VAL NIL") is None
    assert P.parse_val("VAL n") is Null


@pytest.mark.parametrize("bad", ["", "q", "i1.5", "f", "fabc", "b2", "x0", "xzz", "nn"])
def test_undecodable_values_raise(bad: str) -> None:
    with pytest.raises(taupy.ProtocolError):
        decode_value(bad)


@pytest.mark.parametrize(
    "value, lit",
    [
        (True, "true"),
        (False, "false"),
        (7, "7"),
        (-7, "-7"),
        (1.5, "1.5"),
        (20.0, "20.0"),
        (1e16, "1e+16"),
        (-0.0, "-0.0"),
        ("a \"q\" \\ b", '"a \\"q\\" \\\\ b"'),
        (b"\x00\xff", "0x00ff"),
        (bytearray(b"\x01"), "0x01"),
        (None, "null"),
        (Null, "null"),
    ],
)
def test_literal(value: object, lit: str) -> None:
    assert literal(value) == lit


def test_literal_rejects_what_cannot_be_sent() -> None:
    for bad in (float("nan"), float("inf"), "two\nlines", "cr\r"):
        with pytest.raises(ValueError):
            literal(bad)
    with pytest.raises(TypeError):
        literal(object())


def test_literal_numpy_scalars() -> None:
    np = pytest.importorskip("numpy")
    assert literal(np.int64(-3)) == "-3"
    assert literal(np.float32(0.5)) == "0.5"
    assert literal(np.bool_(True)) == "true"


def test_time_literals() -> None:
    t = dt.datetime(2026, 12, 6, 10, 0, 0, 250000, tzinfo=dt.timezone.utc)
    assert datetime_to_ms(t) == 1796551200250
    assert ms_to_datetime(1796551200250) == t
    assert time_literal(t) == "1796551200250"
    assert time_literal("2026-12-06T10:00:00Z") == "1796551200000"
    assert time_literal("2026-12-06T10:00:00.250+01:00") == str(1796551200250 - 3_600_000)
    assert time_literal("2026-12-06t09:30:00.2509-00:30") == str(1796551200250)
    assert time_literal("1970-01-01T00:00:00.0001Z") == "0"
    for bad in ("2026-12-06T10:00:00", "yesterday", "2026-12-06", "2026-13-01T00:00:00Z"):
        with pytest.raises(ValueError):
            time_literal(bad)
    assert time_literal(5) == "5"
    with pytest.raises(ValueError):
        time_literal(dt.datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        time_literal(1.5)


def test_names_are_checked() -> None:
    with pytest.raises(ValueError):
        P.at("x; DROP", 1, None, None)
    with pytest.raises(ValueError):
        P.at("null", 1, None, None)
    assert P.at("_x1", 5, None, 3) == "AT LENS _x1 5 LAYER 3"
    with pytest.raises(ValueError):
        P.at("x", 5, 1, 3)


def test_statement_builders() -> None:
    assert P.range_("t", 0, 10, "2026-01-01T00:00:00Z", None, "t > 1", 5, 2) == (
        "RANGE LENS t 0 10 AS OF 1767225600000 WHERE t > 1 LIMIT 5 OFFSET 2"
    )
    assert P.reduce("t", 0, 10, "TWAVG", None, None) == "REDUCE LENS t 0 10 USING twavg"
    with pytest.raises(ValueError):
        P.reduce("t", 0, 10, "median", None, None)
    assert P.history("t", None, None) == "HISTORY LENS t"
    assert P.history("t", 1, 2) == "HISTORY LENS t 1 2"
    assert P.append("t", [(0, 1, "a b"), (1, 2, None)]) == 'APPEND LENS t 0 1 "a b", 1 2 null'
    assert P.append("t", []) is None
    assert P.auth("admin", 'p "w"') == 'AUTH admin "p \\"w\\""'
    assert P.grant("RU", "*", "bob") == "GRANT RU ON * TO bob"


def test_replies_parse() -> None:
    r = P.parse_range("RANGE 3; 0:40:i1; 40:60:n; -5:-1:sa%3Ab")
    assert r == [(0, 40, 1), (40, 60, Null), (-5, -1, "a:b")]
    assert r[0].start == 0 and r[0].end == 40 and r[0].value == 1
    assert P.parse_range("RANGE 0") == []
    assert P.range_columns("RANGE 2; 0:1:f1.5; 1:2:f-2", None) == ([0, 1], [1, 2], [1.5, -2.0], "f")
    assert P.range_columns("RANGE 2; 0:1:i5; 1:2:i-2", None) == ([0, 1], [1, 2], [5, -2], "i")
    # a string that looks like ":f" inside is escaped, so kinds stay right
    assert P.range_columns("RANGE 1; 0:1:sf%3Af", None)[2:] == (["f:f"], "mixed")
    assert P.parse_names("NAMES 2; a; b") == ["a", "b"]
    assert P.parse_names("NAMES 0") == []
    layers = P.parse_layers("LAYERS 2; 1:1795245092597:0:7200; 2:1795245092598:0:3600")
    assert layers[1] == (2, 1795245092598, 0, 3600)
    assert layers[0].written_at_datetime == ms_to_datetime(1795245092597)
    assert P.parse_grants("GRANTS 2; admin *:A; bob") == {"admin": {"*": "A"}, "bob": {}}
    assert P.parse_status("STATUS 2; auth:off; database:-") == {"auth": "off", "database": "-"}
    for bad in ("RANGE 2; 0:1:i1", "RANGE x", "NAMES 1", "LAYERS 1; 1:2:3", "HELLO", "RANGE 1; 0:1:q"):
        with pytest.raises(taupy.ProtocolError):
            P.Reply(bad).value


def test_error_prefixes_map_to_types() -> None:
    cases = {
        "ERR parse error at column 24: expected USING, found \"USNG\"": errors.ParseError,
        "ERR no active database": errors.NoActiveDatabase,
        "ERR unknown database: d": errors.UnknownDatabase,
        "ERR duplicate database: d": errors.DuplicateDatabase,
        "ERR unknown lens: l": errors.UnknownLens,
        "ERR duplicate lens: l": errors.DuplicateLens,
        "ERR type mismatch on x: expected int, got float": errors.TypeMismatch,
        "ERR invalid range (start >= end)": errors.InvalidRange,
        "ERR overlapping intervals in one write": errors.OverlappingIntervals,
        "ERR cycle detected in derived lens: d": errors.CycleDetected,
        "ERR invalid expression: division by zero": errors.InvalidExpression,
        "ERR permission denied: needs R": errors.PermissionDenied,
        "ERR transaction already active": errors.TransactionAlreadyActive,
        "ERR no active transaction": errors.NoActiveTransaction,
        "ERR line too long": errors.LineTooLong,
        "ERR server at connection limit": errors.ConnectionLimit,
        "ERR storage error: disk": errors.StorageError,
        "ERR authentication failed": errors.AuthenticationError,
        "ERR lens x is used by derived lens d": errors.LensInUse,
        "ERR line 3: invalid start": errors.CopyLineError,
        "ERR invalid in transaction: GRANT": errors.InvalidInTransaction,
        "ERR something new": errors.ServerError,
    }
    for raw, cls in cases.items():
        e = errors.error_from_reply(raw)
        assert type(e) is cls, raw
        assert isinstance(e, taupy.TauError)
        assert e.message == raw[4:]
        assert e.raw == raw
    assert errors.error_from_reply("ERR parse error at column 24: x").column == 24  # type: ignore[attr-defined]
    assert errors.error_from_reply("ERR unknown lens: temp").name == "temp"  # type: ignore[attr-defined]
    assert errors.error_from_reply("ERR line 3: invalid start").line == 3  # type: ignore[attr-defined]
    assert issubclass(taupy.ConnectionLost, ConnectionError)
    assert issubclass(taupy.TauTimeout, TimeoutError)


def test_batch_encoding_round_trips() -> None:
    cols = columns([0, 10, 20], [10, 20, 30], [1.5, 1e16, -0.0])
    assert cols.kind == "f"
    (stmt, n), = statements("x", cols)
    assert n == 3
    words = stmt.split()
    assert words[:5] == [b"BATCH", b"APPEND", b"LENS", b"x", b"{"] and words[-1] == b"}"
    assert [float(w.rstrip(b";")) for w in words[7::3]] == [1.5, 1e16, -0.0]
    assert words[13] == b"-0.0"
    assert stmt.endswith(b" }\n")
    cols = columns([0], [1], ["a;b c"])
    assert list(statements("x", cols)) == [(b'BATCH APPEND LENS x { 0 1 "a;b c" }\n', 1)]
    cols = columns([0, 1], [1, 2], [True, None])
    assert cols.kind == ""
    assert next(statements("x", cols))[0] == b"BATCH APPEND LENS x { 0 1 true; 1 2 null }\n"
    with pytest.raises(ValueError):
        columns([0], [1], [float("nan")])
    with pytest.raises(ValueError):
        columns([0, 1], [1], [1, 2])


def test_batch_chunking_respects_rows_and_bytes() -> None:
    n = 1000
    cols = Columns(list(range(n)), list(range(1, n + 1)), [0.1 * i for i in range(n)], "f")
    chunks = [(s.decode(), r) for s, r in statements("x", cols, chunk_rows=300, max_bytes=2000)]
    assert sum(r for _, r in chunks) == n
    assert all(len(s) <= 2001 and s.endswith(" }\n") for s, _ in chunks)
    assert all(r <= 300 for _, r in chunks)
    # every row appears once, in order, and reads back as the same numbers
    rows = [row.split() for s, _ in chunks for row in s[s.index("{") + 2 : -3].split("; ")]
    assert [(int(a), int(b), float(c)) for a, b, c in rows] == [(i, i + 1, 0.1 * i) for i in range(n)]


def test_batch_numpy_columns() -> None:
    np = pytest.importorskip("numpy")
    cols = columns(np.arange(3, dtype=np.int64), np.arange(1, 4, dtype=np.int32), np.array([0.5, 2.0, 3.25]))
    assert cols.kind == "f" and cols.starts.tolist() == [0, 1, 2] and cols.values.tolist() == [0.5, 2.0, 3.25]
    assert cols.ends.dtype == np.int64
    with pytest.raises(ValueError):
        columns(np.arange(2), np.arange(1, 3), np.array([1.0, np.inf]))
    with pytest.raises(TypeError):
        columns(np.array([0.5]), np.array([1]), np.array([1.0]))
    assert columns(np.arange(2), np.arange(1, 3), np.array([7, 8])).kind == "i"


def test_vectorised_float_text_round_trips_exactly() -> None:
    np = pytest.importorskip("numpy")
    from taupy import npfast

    rng = np.random.default_rng(7)
    vals = np.concatenate(
        [
            rng.normal(20, 5, 20000),
            np.round(rng.normal(20, 5, 20000), 2),
            rng.normal(0, 1, 2000) * 10.0 ** rng.integers(-300, 300, 2000),
            np.array([0.0, -0.0, 1e16, 2.0**53, 2.0**53 - 1, 1.5e-7, 5e-324, 1.7976931348623157e308,
                      -1.7976931348623157e308, 0.1, 0.30000000000000004, 20.0, -20.0, 1e-6, 0.05]),
        ]
    )
    texts = [bytes(r).decode() for r in npfast.float_fields(vals)]
    for t, v in zip(texts, vals.tolist()):
        assert float(t) == v and t.strip().startswith("-") == (math.copysign(1, v) < 0), (t, v)
        assert "." in t or "e" in t  # never an int literal
    assert [t.strip() for t in texts[-4:-2]] == ["20.0", "-20.0"]
    # a column of short values gets the shortest forms
    short = [bytes(r).decode().strip() for r in npfast.float_fields(np.array([0.05, 1e-6, 18.5, -0.0, 3.0] * 60))]
    assert short[:5] == ["0.05", "0.000001", "18.5", "-0.0", "3.0"]
    ints = np.concatenate([rng.integers(-(2**62), 2**62, 5000), np.array([0, -1, 9, 10, -10, 2**63 - 1])])
    assert [int(bytes(r)) for r in npfast.int_fields(ints)] == ints.tolist()
    assert npfast.int_fields(np.array([-(2**63)])) is None


def test_vectorised_range_parse_is_exact() -> None:
    np = pytest.importorskip("numpy")
    from taupy import npfast

    rng = np.random.default_rng(8)
    vals = np.concatenate([rng.normal(20, 5, 5000), np.array([0.0, -0.0, 1e20, 5e-324, 123.0, -7.25])])
    n = len(vals)
    items = [
        f"{s}:{s + 3}:f{np.format_float_positional(v, unique=True, trim='-')}"
        for s, v in zip(range(-100, n - 100), vals.tolist())
    ]
    line = f"RANGE {n}; {'; '.join(items)}".encode()
    got = npfast.range_arrays(line)
    assert got is not None
    s, e, v, kind = got
    assert kind == "f" and s.tolist() == list(range(-100, n - 100)) and (e == s + 3).all()
    assert v.tolist() == vals.tolist() and (np.signbit(v) == np.signbit(vals)).all()
    # a block of equal-width, all-digit starts and ends takes the uniform path
    m = 9000
    line = ("RANGE %d; " % m + "; ".join(f"{t}:{t + 7}:i{t % 13 - 6}" for t in range(10_000, 10_000 + m))).encode()
    s, e, v, kind = npfast.range_arrays(line)  # type: ignore[misc]
    assert s.tolist() == list(range(10_000, 10_000 + m)) and (e == s + 7).all()
    assert v.tolist() == [t % 13 - 6 for t in range(10_000, 10_000 + m)]
    # ints, including the extremes
    line = b"RANGE 3; -9223372036854775808:0:i9223372036854775807; 0:1:i-5; 1:2:i0"
    s, e, v, kind = npfast.range_arrays(line)  # type: ignore[misc]
    assert kind == "i" and s.tolist() == [-(2**63), 0, 1] and v.tolist() == [2**63 - 1, -5, 0]
    # anything else is left to the general path
    assert npfast.range_arrays(b"RANGE 2; 0:1:f1.5; 1:2:n") is None
    assert npfast.range_arrays(b"RANGE 0") is None
