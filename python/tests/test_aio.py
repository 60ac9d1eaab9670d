"""The asyncio client against a real tau-server: the same API as coroutines."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

import taupy
import taupy.aio
from taupy import Null

from .conftest import Server


def run(server: Server, db: str, body: Callable[[taupy.aio.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with await taupy.aio.connect(server.host, server.port, timeout=30) as c:
            await c.create_database(db)
            await c.use(db)
            assert c.database == db
            await body(c)

    asyncio.run(main())


def test_async_reads_and_writes(server: Server, db_name: str) -> None:
    async def body(c: taupy.aio.AsyncClient) -> None:
        await c.create_lens("temp", "float")
        await c.append("temp", [(0, 3600, 18.5), (3600, 7200, 21.0), (7200, 7300, Null)])
        assert await c.at("temp", 1800) == 18.5
        assert await c.at("temp", 7250) is Null
        assert await c.at("temp", 9000) is None
        assert await c.range("temp", 0, 7200) == [(0, 3600, 18.5), (3600, 7200, 21.0)]
        assert await c.reduce("temp", 0, 7200, "twavg") == 19.75
        h = await c.history("temp")
        assert len(h) == 1 and h[0].max_end == 7300
        assert await c.at("temp", 1800, layer=h[0].layer) == 18.5
        assert await c.at("temp", 1800, as_of=h[0].written_at_datetime) == 18.5
        await c.derive("f", "temp * 2.0")
        assert await c.show_lenses() == ["f", "temp"]
        assert (await c.execute("AT LENS f 1800")).raw == "VAL f37"
        with pytest.raises(taupy.UnknownLens):
            await c.at("nope", 1)
        with pytest.raises(taupy.ParseError) as e:
            await c.execute("AT LENS temp x")
        assert e.value.column == 13
        assert (await c.show_status())["transaction"] == "off"

    run(server, db_name, body)


def test_async_batch_pipeline_and_concurrency(server: Server, db_name: str) -> None:
    np = pytest.importorskip("numpy")

    async def body(c: taupy.aio.AsyncClient) -> None:
        await c.create_lens("x", float)
        n = 30_000
        s = np.arange(n, dtype=np.int64) * 2
        v = np.linspace(-1, 1, n)
        assert await c.batch_append("x", s, s + 1, v, chunk_rows=4000) == n
        df = await c.range_df("x", 0, 2 * n)
        assert len(df) == n and (df["value"].to_numpy() == v).all()
        replies = await c.pipeline([f"AT LENS x {t}" for t in range(0, 2000)])
        assert [r.value for r in replies[:4]] == [v[0], None, v[1], None]
        # concurrent coroutines on one client each get their own reply
        got = await asyncio.gather(*(c.at("x", 2 * i) for i in range(200)))
        assert got == [float(x) for x in v[:200]]

    run(server, db_name, body)


def test_async_transaction(server: Server, db_name: str) -> None:
    async def body(c: taupy.aio.AsyncClient) -> None:
        await c.create_lens("x", int)
        async with c.transaction():
            await c.append("x", [(0, 10, 1)])
            assert c.in_transaction
            assert await c.at("x", 5) is None
        assert await c.at("x", 5) == 1
        with pytest.raises(RuntimeError):
            async with c.transaction():
                await c.append("x", [(10, 20, 2)])
                raise RuntimeError("boom")
        assert await c.at("x", 15) is None
        assert not c.in_transaction

    run(server, db_name, body)
