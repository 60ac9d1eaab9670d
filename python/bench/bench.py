"""Benchmarks of the Python client (BENCHMARKS.md, "Python client").

    python python/bench/bench.py [--server target/release/tau-server] [--rows 1000000]
                                 [--at-secs 5] [--reps 3] [--host H --port P]

Without --host it starts the release server on a loopback port with a fresh durable data
directory (fsync before every OK, the defaults otherwise), like server/bench-wire.sh.
Three figures, each the median of --reps repetitions (every repetition also printed):

* batch_append: N float rows from NumPy arrays (starts, ends int64; values float64 drawn
  from a normal distribution, i.e. 17-significant-digit floats, the costliest to format),
  timed from the call to the last acknowledgement, into a fresh lens each time. Also with
  values rounded to 2 decimals (typical sensor data).
* at: the workload of `tau-load at --conns 1 --depth 1`: a lens of 100,000 intervals of
  length 10 loaded in 10 BATCH APPENDs, point queries at pseudo-random times, one
  request/response at a time for --at-secs seconds; statements/s and the mean round trip.
* range_df: RANGE over the N-piece lens written above, straight into a pandas DataFrame
  (start, end int64; value float64), timed from the call to the finished frame.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import pandas  # noqa: F401  (imported here so that no timed call pays for the import)

import taupy

ROOT = pathlib.Path(__file__).resolve().parents[2]


def start_server(binary: str, in_memory: bool) -> Tuple[subprocess.Popen[bytes], str, int, str]:
    d = tempfile.mkdtemp(prefix="taupy-bench-")
    store = ["--in-memory"] if in_memory else ["--data-dir", os.path.join(d, "data")]
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1:0", *store, "--log-level", "warn"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for raw in proc.stderr:
        line = raw.decode()
        if "serving on " in line:
            host, _, port = line.split("serving on ")[1].split()[0].rpartition(":")
            return proc, host, int(port), d
    raise SystemExit("tau-server did not start")


CPU_US: List[float] = []  # client CPU per row of the last timed call, µs


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def median_of(reps: int, fn: Callable[[int], float], label: str) -> float:
    runs = []
    cpus = []
    for i in range(reps):
        CPU_US.clear()
        runs.append(fn(i))
        cpus.extend(CPU_US)
    cpu = f"; client CPU {statistics.median(cpus):.2f} µs/row" if cpus else ""
    print(f"  {label}: runs {', '.join(f'{r:,.0f}' for r in runs)}{cpu}", flush=True)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default=str(ROOT / "target" / "release" / "tau-server"))
    ap.add_argument("--host")
    ap.add_argument("--port", type=int, default=7070)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--at-secs", type=float, default=5.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["batch", "at", "range"], help="run one figure only")
    ap.add_argument("--in-memory", action="store_true", help="start the server --in-memory (no fsync)")
    a = ap.parse_args()

    proc: Optional[subprocess.Popen[bytes]] = None
    tmp: Optional[str] = None
    if a.host is None:
        proc, host, port, tmp = start_server(a.server, a.in_memory)
    else:
        host, port = a.host, a.port
    try:
        run(host, port, a.rows, a.at_secs, a.reps, a.only)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(host: str, port: int, n: int, at_secs: float, reps: int, only: Optional[str]) -> None:
    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, taupy {taupy.__version__}, {n:,} rows")
    c = taupy.connect(host, port)
    db = f"pybench_{os.getpid()}"
    c.create_database(db)
    c.use(db)
    rng = np.random.default_rng(42)
    starts = np.arange(n, dtype=np.int64) * 10
    ends = starts + 10
    values = rng.normal(20.0, 5.0, n)
    rounded = np.round(values, 2)
    lens_counter = [0]

    def batch(vals: Any) -> Callable[[int], float]:
        def one(_: int) -> float:
            lens_counter[0] += 1
            name = f"b{lens_counter[0]}"
            c.create_lens(name, float)
            c0 = cpu_seconds()
            t = time.perf_counter()
            written = c.batch_append(name, starts, ends, vals)
            dt = time.perf_counter() - t
            CPU_US.append((cpu_seconds() - c0) / n * 1e6)
            assert written == n
            return n / dt

        return one

    def preencoded(vals: Any) -> Callable[[int], float]:
        # Diagnostic: the same BATCH APPEND statements encoded beforehand (not timed) and
        # then sent and acknowledged: what the server takes for this data, client encoding
        # excluded.
        from taupy import batch as tb

        def one(_: int) -> float:
            lens_counter[0] += 1
            name = f"b{lens_counter[0]}"
            c.create_lens(name, float)
            stmts = [st for st, _ in tb.statements(name, tb.columns(starts, ends, vals))]
            t = time.perf_counter()
            for st in stmts:
                c._send_pumping(st)
            for _ in stmts:
                assert c._read_line() == "OK"
            return n / (time.perf_counter() - t)

        return one

    full = two = at_rate = rng_rate = list_rate = float("nan")
    big = ""
    if only in (None, "batch", "range"):
        print("batch_append (rows/s, end to end from NumPy arrays):", flush=True)
        full = median_of(reps if only != "range" else 1, batch(values), "float64 normal(20, 5)")
        big = f"b{lens_counter[0]}"  # a lens with the full-precision values
        if only != "range":
            two = median_of(reps, batch(rounded), "same values rounded to 2 decimals")
        small = f"b{lens_counter[0]}"
        if only == "batch":
            pre_full = median_of(reps, preencoded(values), "diagnostic: full precision, pre-encoded (server-bound)")
            pre_two = median_of(reps, preencoded(rounded), "diagnostic: 2 decimals, pre-encoded (server-bound)")

    if only in (None, "at"):
        c.create_lens("atlens", int)
        per = 10_000
        for k in range(10):
            s = np.arange(k * per, (k + 1) * per, dtype=np.int64) * 10
            c.batch_append("atlens", s, s + 10, np.arange(k * per, (k + 1) * per, dtype=np.int64))

        def at_run(_: int) -> float:
            x = 0x9E3779B97F4A7C15
            count = 0
            t0 = time.perf_counter()
            deadline = t0 + at_secs
            at = c.at
            while True:
                for _ in range(200):
                    x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
                    at("atlens", (x >> 33) % 1_000_000)
                count += 200
                if time.perf_counter() >= deadline:
                    break
            return count / (time.perf_counter() - t0)

        print(f"at (statements/s, 1 connection, request/response, {at_secs:g} s per run):", flush=True)
        at_rate = median_of(reps, at_run, "AT")

    if only in (None, "range"):

        def range_run(lens: str) -> Callable[[int], float]:
            def one(_: int) -> float:
                c0 = cpu_seconds()
                t = time.perf_counter()
                df = c.range_df(lens, 0, n * 10)
                dt = time.perf_counter() - t
                CPU_US.append((cpu_seconds() - c0) / n * 1e6)
                assert len(df) == n and str(df["value"].dtype) == "float64"
                return n / dt

            return one

        print("range_df (rows/s, RANGE of the whole lens into a DataFrame):", flush=True)
        rng_rate = median_of(reps, range_run(big), f"{n:,} pieces, full-precision values")
        if only is None:
            rng2 = median_of(reps, range_run(small), f"{n:,} pieces, values rounded to 2 decimals")

        def range_list_run(_: int) -> float:
            t = time.perf_counter()
            pieces = c.range(big, 0, n * 10)
            dt = time.perf_counter() - t
            assert len(pieces) == n
            return n / dt

        list_rate = median_of(reps, range_list_run, "full precision into a list of Piece tuples")
    c.drop_database(db)
    c.close()
    print()
    print("| measurement | median |")
    print("| --- | --- |")
    if only in (None, "batch"):
        print(f"| batch_append, {n:,} float64 rows (full precision) from NumPy, rows/s | {full:,.0f} |")
        print(f"| the same, values rounded to 2 decimals, rows/s | {two:,.0f} |")
        if only == "batch":
            print(f"| (diagnostic) full precision, statements pre-encoded, rows/s | {pre_full:,.0f} |")
            print(f"| (diagnostic) 2 decimals, statements pre-encoded, rows/s | {pre_two:,.0f} |")
    if only in (None, "at"):
        print(f"| at, 1 connection, request/response, statements/s | {at_rate:,.0f} ({1e6 / at_rate:.1f} µs per round trip) |")
    if only in (None, "range"):
        print(f"| range_df, {n:,} pieces (full precision) into a DataFrame, rows/s | {rng_rate:,.0f} |")
        if only is None:
            print(f"| the same, values rounded to 2 decimals, rows/s | {rng2:,.0f} |")
        print(f"| range, {n:,} pieces into a list, rows/s | {list_rate:,.0f} |")


if __name__ == "__main__":
    main()
