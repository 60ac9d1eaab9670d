#!/usr/bin/env bash
# Restart time at scale (BENCHMARKS.md, "Recovery at scale"): a data directory whose WAL
# holds N commits, as the engine logs them, and the time from starting tau-server to its
# first answered statement, with the server's peak resident memory.
#
#   bash bench/recovery_restart.sh commits 1000000          # 1M single-interval commits
#   bash bench/recovery_restart.sh batches 100000000 10000  # 100M intervals, 10k per commit
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p tau-server -p tau-engine --example recovery_scale
work=${WORK:-target/recovery-restart}
rm -rf "$work" && mkdir -p "$work/data" && chmod 700 "$work/data"
./target/release/examples/recovery_scale "$@" "$work/data/wal-0.log"
python3 - "$work/data" <<'EOF'
import socket, subprocess, sys, time
data = sys.argv[1]
t0 = time.monotonic()
p = subprocess.Popen(["./target/release/tau-server", "--bind", "127.0.0.1:0", "--data-dir", data],
                     stderr=subprocess.PIPE, text=True)
addr = None
for line in p.stderr:
    if "serving on " in line:
        addr = line.split("serving on ")[1].split()[0]
        break
host, port = addr.rsplit(":", 1)
s = socket.create_connection((host, int(port)))
s.sendall(b"SHOW DATABASES\n")
f = s.makefile("rb")
reply = f.readline().decode().strip()
t1 = time.monotonic()
hwm = [l for l in open(f"/proc/{p.pid}/status") if l.startswith(("VmHWM", "VmRSS"))]
s.sendall(b"USE DATABASE db\nHISTORY LENS temp 0 60000\n")
f.readline(); hist = f.readline().decode().strip()
print(f"first reply {reply!r} after {t1 - t0:.2f} s; {' '.join(x.split()[0] + x.split()[1] for x in hwm)} kB; {hist[:60]}")
p.terminate(); p.wait()
EOF
