"""The sync client against a real tau-server."""

from __future__ import annotations

import datetime as dt
import time

import pytest

import taupy
from taupy import Null

from .conftest import Server


def test_spec_worked_examples(client: taupy.Client) -> None:
    c = client
    c.create_lens("temp", float)
    c.append("temp", [(0, 3600, 18.5), (3600, 7200, 21.0)])
    assert c.at("temp", 1800) == 18.5
    assert c.range("temp", 0, 7200) == [(0, 3600, 18.5), (3600, 7200, 21.0)]
    c.append("temp", [(0, 3600, 20)])  # int widened to float
    v = c.at("temp", 1800)
    assert v == 20.0 and type(v) is float
    assert c.at("temp", 1800, layer=1) == 18.5
    assert c.reduce("temp", 0, 7200, "twavg") == 20.5
    c.derive("temp_f", "temp * 9.0 / 5.0 + 32.0")
    assert c.at("temp_f", 1800) == 68.0
    c.create_lens("x", "int")
    c.append("x", [(0, 100, 1)])
    c.append("x", [(40, 60, 2)])
    assert c.range("x", 0, 100) == [(0, 40, 1), (40, 60, 2), (60, 100, 1)]
    assert c.reduce("x", 0, 100, "count") == 3
    assert c.reduce("x", 0, 100, "integral") == 120
    with pytest.raises(taupy.InvalidRange):
        c.append("x", [(10, 5, 1)])
    with pytest.raises(taupy.TypeMismatch) as e:
        c.append("x", [(0, 10, 1.5)])
    assert e.value.message == "type mismatch on x: expected int, got float"
    assert c.execute("RANGE LENS x 0 100").raw == "RANGE 3; 0:40:i1; 40:60:i2; 60:100:i1"


VALUES = {
    "int": [0, -1, 2**63 - 1, -(2**63), 42],
    "float": [0.1 + 0.2, -0.0, 1e16, 1.5e-7, 20.0, 1.7976931348623157e308, 5e-324, -123.456],
    "str": ["", "plain", "a b:c;d%e", "quote \" and \\ backslash", "ünïcødé ✓", "%41", "tab\tend"],
    "bool": [True, False],
    "bytes": [b"", b"\x00\xff\x10", bytes(range(256))],
}


@pytest.mark.parametrize("typ", sorted(VALUES))
def test_every_value_type_round_trips(client: taupy.Client, typ: str) -> None:
    vals = VALUES[typ]
    client.create_lens("v", typ)
    rows = [(i * 10, i * 10 + 10, v) for i, v in enumerate(vals)]
    rows.append((len(vals) * 10, len(vals) * 10 + 10, Null))
    client.append("v", rows)
    for s, _, v in rows:
        got = client.at("v", s)
        assert got == v and type(got) is type(v), (v, got)
        if isinstance(v, float):
            assert repr(got) == repr(v)  # -0.0 stays -0.0
    assert client.at("v", -5) is None  # NIL
    assert client.at("v", len(vals) * 10) is Null  # stored null, not NIL
    got_range = client.range("v", -100, 10_000)
    assert [tuple(p) for p in got_range] == rows
    # the batch path writes the same values
    client.create_lens("w", typ)
    n = client.batch_append("w", [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    assert n == len(rows)
    assert client.range("w", -100, 10_000) == got_range


def test_string_with_newline_cannot_be_sent(client: taupy.Client) -> None:
    client.create_lens("s", str)
    with pytest.raises(ValueError):
        client.append("s", [(0, 1, "a\nb")])
    assert client.range("s", 0, 10) == []


def test_as_of_layer_and_history(client: taupy.Client) -> None:
    client.create_lens("t", float)
    client.append("t", [(0, 100, 1.0)])
    h1 = client.history("t")
    time.sleep(0.01)
    client.append("t", [(0, 50, 2.0)])
    h = client.history("t")
    assert [x.layer for x in h] == [h1[0].layer, h1[0].layer + 1]
    assert h[1].min_start == 0 and h[1].max_end == 50
    first = h[0].written_at
    assert isinstance(h[0].written_at_datetime, dt.datetime)
    assert h[0].written_at_datetime == taupy.ms_to_datetime(first)
    assert client.history("t", 60, 70) == [h[0]]
    assert client.at("t", 10) == 2.0
    assert client.at("t", 10, as_of=first) == (2.0 if h[1].written_at == first else 1.0)
    assert client.at("t", 10, as_of=first - 1) is None
    # an aware datetime and an RFC 3339 string mean the same instant
    when = h[0].written_at_datetime
    assert client.at("t", 10, as_of=when) == client.at("t", 10, as_of=first)
    iso = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    assert client.at("t", 10, as_of=iso) == client.at("t", 10, as_of=first)
    assert client.range("t", 0, 100, layer=h[0].layer) == [(0, 100, 1.0)]
    with pytest.raises(ValueError):
        client.at("t", 10, as_of="not a time")


def test_range_where_limit_offset_and_reduce(client: taupy.Client) -> None:
    client.create_lens("x", int)
    client.append("x", [(i, i + 1, i) for i in range(10)])
    assert client.range("x", 0, 10, where="x >= 7") == [(7, 8, 7), (8, 9, 8), (9, 10, 9)]
    assert client.range("x", 0, 10, limit=2, offset=3) == [(3, 4, 3), (4, 5, 4)]
    assert client.reduce("x", 0, 10, "sum") == 45
    assert client.reduce("x", 0, 10, "avg") == 4.5
    assert client.reduce("x", 0, 10, "max") == 9
    assert client.reduce("x", 0, 10, "first") == 0
    assert client.reduce("x", 0, 10, "duration") == 10
    assert client.reduce("x", 100, 200, "sum") is None
    assert client.reduce("x", 100, 200, "count") == 0


def test_catalog_helpers(client: taupy.Client, db_name: str) -> None:
    client.create_lens("b", float)
    client.create_lens("a", int)
    client.derive("d", "a * 2")
    assert client.show_lenses() == ["a", "b", "d"]
    assert db_name in client.show_databases()
    status = client.show_status()
    assert status["database"] == db_name and status["transaction"] == "off"
    with pytest.raises(taupy.LensInUse):
        client.drop_lens("a")
    with pytest.raises(taupy.DuplicateLens) as e:
        client.create_lens("a", int)
    assert e.value.name == "a"
    client.drop_lens("d")
    client.drop_lens("a")
    assert client.show_lenses() == ["b"]
    client.compact("b")
    assert "admin" not in client.show_users()  # auth off, no bootstrap admin configured


def test_errors_are_typed_and_keep_the_connection(client: taupy.Client, server: Server) -> None:
    client.create_lens("temp", float)
    with pytest.raises(taupy.ParseError) as e:
        client.execute("REDUCE LENS temp 0 7200 USNG twavg")
    assert e.value.column == 24
    assert e.value.message.startswith("parse error at column 24")
    with pytest.raises(taupy.UnknownLens) as u:
        client.at("nope", 1)
    assert u.value.name == "nope" and u.value.statement == "AT LENS nope 1"
    with pytest.raises(taupy.UnknownDatabase):
        client.use("no_such_db")
    with pytest.raises(taupy.InvalidRange):
        client.range("temp", 10, 5)
    client.create_lens("a", int)
    client.derive("d1", "a + 1")
    client.derive("d2", "d1 + 1")
    with pytest.raises(taupy.CycleDetected):
        client.derive("d1", "d2 + 1")
    client.append("a", [(0, 10, 0)])
    with pytest.raises(taupy.InvalidExpression):
        client.range("a", 0, 10, where="a / 0 == 1")
    with pytest.raises(taupy.OverlappingIntervals):
        client.append("a", [(0, 10, 1), (5, 15, 2)])
    with pytest.raises(taupy.NoActiveTransaction):
        client.commit()
    assert client.at("a", 5) == 0  # still usable
    with taupy.connect(server.host, server.port) as fresh:
        with pytest.raises(taupy.NoActiveDatabase):
            fresh.show_lenses()
        # a raw ERR is also returned as a Reply by pipeline when asked
        r = fresh.pipeline(["SHOW LENSES", "SHOW DATABASES"], raise_on_error=False)
        assert r[0].kind == "ERR" and isinstance(r[0].error(), taupy.NoActiveDatabase)
        assert r[1].kind == "NAMES"


def test_transaction_commits_and_rolls_back(client: taupy.Client, server: Server, db_name: str) -> None:
    client.create_lens("x", int)
    with taupy.connect(server.host, server.port, database=db_name) as other:
        with client.transaction():
            assert client.in_transaction
            client.append("x", [(0, 10, 1)])
            client.batch_append("x", [10, 20], [20, 30], [2, 3], chunk_rows=1)
            assert other.at("x", 5) is None  # invisible until COMMIT
            assert client.at("x", 5) is None  # even to its own connection
        assert not client.in_transaction
        assert other.range("x", 0, 100) == [(0, 10, 1), (10, 20, 2), (20, 30, 3)]
        layers = client.history("x")
        assert len(layers) == 3 and len({la.written_at for la in layers}) == 1

        with pytest.raises(KeyError):
            with client.transaction():
                client.append("x", [(100, 110, 9)])
                raise KeyError("boom")
        assert not client.in_transaction
        assert other.at("x", 105) is None
        assert client.show_status()["transaction"] == "off"

        # a server-side error inside the block rolls back too
        with pytest.raises(taupy.TypeMismatch):
            with client.transaction():
                client.append("x", [(200, 210, 1)])
                client.append("x", [(210, 220, "no")])
        assert other.at("x", 205) is None

        client.begin()
        with pytest.raises(taupy.TransactionAlreadyActive):
            client.begin()
        with pytest.raises(taupy.InvalidInTransaction):
            client.create_database("nope_" + db_name)
        client.rollback()


def test_pipeline_keeps_order(client: taupy.Client) -> None:
    client.create_lens("x", int)
    client.batch_append("x", list(range(0, 20000, 2)), list(range(1, 20001, 2)), list(range(10000)))
    stmts = [f"AT LENS x {t}" for t in range(0, 20000)]
    replies = client.pipeline(stmts)
    assert len(replies) == 20000
    assert [r.value for r in replies[:6]] == [0, None, 1, None, 2, None]
    assert all(replies[2 * i].value == i for i in range(10000))
    with pytest.raises(taupy.UnknownLens):
        client.pipeline(["AT LENS x 0", "AT LENS nope 0", "AT LENS x 2"])
    r = client.pipeline(["AT LENS x 0", "AT LENS nope 0", "AT LENS x 2"], raise_on_error=False)
    assert [x.raw for x in r] == ["VAL i0", "ERR unknown lens: nope", "VAL i1"]


def test_pipeline_of_big_replies_does_not_deadlock(client: taupy.Client) -> None:
    # Each RANGE reply is ~300 KB: far more output than the socket buffers and the
    # server's output window hold while the client is still sending.
    client.create_lens("x", int)
    n = 20000
    client.batch_append("x", range(0, n), range(1, n + 1), range(n))
    stmts = [f"RANGE LENS x 0 {n}"] * 150 + ["AT LENS x 7"] * 50000
    replies = client.pipeline(stmts)
    assert len(replies) == len(stmts)
    assert len(replies[149].value) == n
    assert replies[-1].value == 7


def test_batch_append_chunks_and_reports_partial_failure(client: taupy.Client) -> None:
    client.create_lens("x", float)
    n = 10_000
    written = client.batch_append(
        "x", range(0, 2 * n, 2), range(1, 2 * n + 1, 2), [i / 7 for i in range(n)], chunk_rows=999, max_statement_bytes=20_000
    )
    assert written == n
    assert len(client.history("x")) > n // 999
    got = client.range("x", 0, 2 * n)
    assert len(got) == n and got[123] == (246, 247, 123 / 7)
    # a bad row in the third chunk: the first two chunks stay, the error says so
    client.create_lens("y", int)
    starts = list(range(0, 3000))
    ends = [s + 1 for s in starts]
    ends[2500] = 2500  # start >= end
    with pytest.raises(taupy.InvalidRange) as e:
        client.batch_append("y", starts, ends, list(range(3000)), chunk_rows=1000, depth=1)
    assert e.value.rows_written == 2000  # type: ignore[attr-defined]
    assert client.reduce("y", 0, 3000, "count") == 2000


def test_batch_append_numpy(client: taupy.Client) -> None:
    np = pytest.importorskip("numpy")
    client.create_lens("x", float)
    n = 50_000
    s = np.arange(n, dtype=np.int64) * 10
    v = np.random.default_rng(1).normal(size=n)
    assert client.batch_append("x", s, s + 10, v) == n
    df = client.range_df("x", 0, n * 10)
    assert len(df) == n
    assert str(df["start"].dtype) == "int64" and str(df["value"].dtype) == "float64"
    assert (df["start"].to_numpy() == s).all()
    assert (df["value"].to_numpy() == v).all()  # exact round trip
    client.create_lens("i", int)
    assert client.batch_append("i", s, s + 5, np.arange(n, dtype=np.int32)) == n
    assert client.range_df("i", 0, 50)["value"].tolist() == [0, 1, 2, 3, 4]


def test_range_df_types(client: taupy.Client) -> None:
    pd = pytest.importorskip("pandas")
    client.create_lens("f", float)
    client.append("f", [(0, 1, 1.5), (1, 2, Null)])
    df = client.range_df("f", 0, 10)
    assert str(df["value"].dtype) == "Float64"
    assert df["value"][0] == 1.5 and df["value"][1] is pd.NA
    client.create_lens("i", int)
    client.append("i", [(0, 1, 3), (1, 2, None)])
    assert str(client.range_df("i", 0, 10)["value"].dtype) == "Int64"
    client.create_lens("b", bool)
    client.append("b", [(0, 1, True), (1, 2, False)])
    assert client.range_df("b", 0, 10)["value"].tolist() == [True, False]
    assert str(client.range_df("b", 0, 10)["value"].dtype) == "bool"
    client.create_lens("s", str)
    client.append("s", [(0, 1, "a b"), (1, 2, Null)])
    df = client.range_df("s", 0, 10)
    assert str(df["value"].dtype) == "string"
    assert df["value"][0] == "a b" and df["value"][1] is pd.NA
    client.create_lens("x", bytes)
    client.append("x", [(0, 1, b"\x01")])
    assert client.range("x", 0, 10).to_pandas()["value"].tolist() == [b"\x01"]
    empty = client.range_df("f", 100, 200)
    assert len(empty) == 0 and list(empty.columns) == ["start", "end", "value"]
    res = client.range("f", 0, 10)
    assert res.to_pandas()["value"].tolist()[0] == 1.5
    s, e, v = res.to_numpy()
    assert s.tolist() == [0, 1] and v.tolist() == [1.5, None]


def test_context_manager_and_quit(server: Server) -> None:
    with taupy.connect(server.host, server.port) as c:
        assert not c.closed
        assert c.execute("SHOW STATUS").kind == "STATUS"
    assert c.closed
    with pytest.raises(taupy.TauConnectionError):
        c.show_databases()
    c2 = taupy.connect(server.host, server.port)
    c2.quit()
    assert c2.closed


def test_cannot_connect() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(taupy.TauConnectionError):
        taupy.connect("127.0.0.1", port, timeout=5)


def test_range_df_streams_big_replies_and_falls_back_on_nulls(client: taupy.Client) -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    n = 120_000  # a reply of several MB, parsed in segments while it arrives
    s = np.arange(n, dtype=np.int64) * 3 - 1000
    v = np.random.default_rng(5).normal(size=n)
    client.create_lens("x", float)
    client.batch_append("x", s, s + 2, v)
    df = client.range_df("x", -10_000, 10**9)
    assert df["start"].tolist() == s.tolist() and df["end"].tolist() == (s + 2).tolist()
    assert (df["value"].to_numpy() == v).all()
    # one stored null far into the reply: the column-wise path gives way to the general one
    client.append("x", [(int(s[100_000]), int(s[100_000]) + 1, None)])
    df = client.range_df("x", -10_000, 10**9)
    assert len(df) == n + 1 and str(df["value"].dtype) == "Float64"
    assert df["value"][100_000] is pd.NA and df["value"][100_001] == v[100_000]
    assert df["value"][5] == v[5]
    with pytest.raises(taupy.UnknownLens):
        client.range_df("nope", 0, 10)
    with pytest.raises(taupy.InvalidRange):
        client.range_df("x", 10, 0)
    assert client.range_df("x", 10**9, 10**9 + 1).empty
