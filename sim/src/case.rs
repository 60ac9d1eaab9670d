//! A simulation case: its configuration and operation list, and their text form (the
//! replayable case files in `seeds/`).
//!
//! Every operation is self-contained, so the shrinker may delete any of them without
//! changing what the others mean.

use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub auth: bool,
    pub conns: u8,
    pub compact_threshold: usize,
    pub job_threshold: usize,
    /// Hold off-loop jobs: statements' jobs complete (in a seeded order) when their
    /// replies are awaited, compaction jobs when a `k` operation completes them.
    pub hold_jobs: bool,
    /// Run the engine durable (WAL on a simulated disk), with restarts.
    pub durable: bool,
    /// Hold storage ops: the driver runs them (strictly in order) only when an `i`
    /// operation or an awaited reply releases them, so several connections' commits wait
    /// on one sync.
    pub hold_io: bool,
    /// The WAL size that starts a checkpoint; 0: chosen from the seed (600 B, 3000 B or
    /// 64 MiB).
    pub checkpoint_bytes: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Queue a line on a connection without sending it (pipelining).
    Buffer { conn: u8, line: String },
    /// Append a line to the connection's queue and send everything queued, cut at the
    /// given byte offsets into separate deliveries.
    Send {
        conn: u8,
        splits: Vec<usize>,
        crlf: bool,
        line: String,
    },
    /// The client vanishes: the connection closes without QUIT.
    Close { conn: u8 },
    /// Send everything queued plus `line` without its final newline, then half-close:
    /// every line is answered, then the server closes.
    Eof { conn: u8, line: String },
    /// The clock moves forward.
    Tick { ms: i64 },
    /// Complete held compaction jobs, in an order derived from `pick`.
    RunJobs { pick: u64 },
    /// Run some of the held storage ops (how many: from `pick`), oldest first, and
    /// deliver their completions.
    Io { pick: u64 },
    /// The process is killed (every connection drops) and a new one starts on the same
    /// disk. The page cache survives a killed process: nothing written is lost.
    Restart,
    /// Power loss after `after` more storage ops complete (the next one is cut short
    /// part-way; `after = 0` means now). Unsynced data is lost or torn as `pick` says;
    /// a new process then recovers. The countdown may run into the recovery.
    PowerLoss { after: u32, pick: u64 },
    /// The next fsync fails with EIO.
    FailSync,
    /// The disk fills up (appends and creates fail with ENOSPC) or has space again.
    DiskFull { full: bool },
    /// The next file read fails with EIO.
    FailRead,
    /// One bit of durable data flips (which file, offset and bit: from `pick`).
    Rot { pick: u64 },
}

impl Op {
    pub fn to_line(&self) -> String {
        match self {
            Op::Buffer { conn, line } => format!("b {conn} {line}"),
            Op::Send {
                conn,
                splits,
                crlf,
                line,
            } => {
                let sp = if splits.is_empty() {
                    "-".to_string()
                } else {
                    splits
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                format!("{} {conn} {sp} {line}", if *crlf { "S" } else { "s" })
            }
            Op::Close { conn } => format!("c {conn}"),
            Op::Eof { conn, line } => format!("e {conn} {line}"),
            Op::Tick { ms } => format!("t {ms}"),
            Op::RunJobs { pick } => format!("k {pick}"),
            Op::Io { pick } => format!("i {pick}"),
            Op::Restart => "r".into(),
            Op::PowerLoss { after, pick } => format!("x {after} {pick}"),
            Op::FailSync => "F".into(),
            Op::DiskFull { full: true } => "D".into(),
            Op::DiskFull { full: false } => "d".into(),
            Op::FailRead => "E".into(),
            Op::Rot { pick } => format!("o {pick}"),
        }
    }

    pub fn from_line(l: &str) -> Result<Op, String> {
        let bad = || format!("bad op line: {l:?}");
        match l {
            "r" => return Ok(Op::Restart),
            "F" => return Ok(Op::FailSync),
            "D" => return Ok(Op::DiskFull { full: true }),
            "d" => return Ok(Op::DiskFull { full: false }),
            "E" => return Ok(Op::FailRead),
            _ => {}
        }
        let (tag, rest) = l.split_once(' ').ok_or_else(bad)?;
        let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
        Ok(match tag {
            "b" => {
                let (c, line) = rest.split_once(' ').ok_or_else(bad)?;
                Op::Buffer {
                    conn: num(c)? as u8,
                    line: line.to_string(),
                }
            }
            "s" | "S" => {
                let (c, rest) = rest.split_once(' ').ok_or_else(bad)?;
                let (sp, line) = rest.split_once(' ').unwrap_or((rest, ""));
                let splits = if sp == "-" {
                    vec![]
                } else {
                    sp.split(',')
                        .map(|x| x.parse().map_err(|_| bad()))
                        .collect::<Result<_, _>>()?
                };
                Op::Send {
                    conn: num(c)? as u8,
                    splits,
                    crlf: tag == "S",
                    line: line.to_string(),
                }
            }
            "e" => {
                let (c, line) = rest.split_once(' ').unwrap_or((rest, ""));
                Op::Eof {
                    conn: num(c)? as u8,
                    line: line.to_string(),
                }
            }
            "c" => Op::Close {
                conn: num(rest)? as u8,
            },
            "t" => Op::Tick { ms: num(rest)? },
            "k" => Op::RunJobs {
                pick: rest.parse().map_err(|_| bad())?,
            },
            "i" => Op::Io {
                pick: rest.parse().map_err(|_| bad())?,
            },
            "x" => {
                let (a, p) = rest.split_once(' ').ok_or_else(bad)?;
                Op::PowerLoss {
                    after: a.parse().map_err(|_| bad())?,
                    pick: p.parse().map_err(|_| bad())?,
                }
            }
            "o" => Op::Rot {
                pick: rest.parse().map_err(|_| bad())?,
            },
            _ => return Err(bad()),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Case {
    pub seed: u64,
    pub cfg: SimConfig,
    pub ops: Vec<Op>,
}

impl Case {
    pub fn to_text(&self, caught: &str) -> String {
        let c = &self.cfg;
        let mut s = String::new();
        let _ = writeln!(s, "# seed: {}", self.seed);
        for l in caught.lines() {
            let _ = writeln!(s, "# caught: {l}");
        }
        let _ = writeln!(
            s,
            "config auth={} conns={} compact_threshold={} job_threshold={} hold_jobs={} durable={} hold_io={} checkpoint_bytes={}",
            c.auth as u8,
            c.conns,
            c.compact_threshold,
            c.job_threshold,
            c.hold_jobs as u8,
            c.durable as u8,
            c.hold_io as u8,
            c.checkpoint_bytes
        );
        for op in &self.ops {
            let _ = writeln!(s, "{}", op.to_line());
        }
        s
    }

    pub fn from_text(text: &str) -> Result<Case, String> {
        let mut seed = 0;
        let mut cfg = None;
        let mut ops = Vec::new();
        for l in text.lines() {
            if let Some(v) = l.strip_prefix("# seed: ") {
                seed = v.trim().parse().map_err(|_| "bad seed line")?;
            } else if l.starts_with('#') || l.trim().is_empty() {
                continue;
            } else if let Some(rest) = l.strip_prefix("config ") {
                let mut c = SimConfig {
                    auth: false,
                    conns: 1,
                    compact_threshold: 32,
                    job_threshold: 1 << 16,
                    hold_jobs: false,
                    durable: false,
                    hold_io: false,
                    checkpoint_bytes: 0,
                };
                for kv in rest.split_whitespace() {
                    let (k, v) = kv.split_once('=').ok_or("bad config")?;
                    let n: usize = v.parse().map_err(|_| "bad config value")?;
                    match k {
                        "auth" => c.auth = n != 0,
                        "conns" => c.conns = n as u8,
                        "compact_threshold" => c.compact_threshold = n,
                        "job_threshold" => c.job_threshold = n,
                        // (older case files call it hold_compactions)
                        "hold_jobs" | "hold_compactions" => c.hold_jobs = n != 0,
                        "durable" => c.durable = n != 0,
                        "hold_io" => c.hold_io = n != 0,
                        "checkpoint_bytes" => c.checkpoint_bytes = n as u64,
                        _ => return Err(format!("unknown config key {k}")),
                    }
                }
                cfg = Some(c);
            } else {
                ops.push(Op::from_line(l)?);
            }
        }
        Ok(Case {
            seed,
            cfg: cfg.ok_or("case has no config line")?,
            ops,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip() {
        let ops = vec![
            Op::Buffer {
                conn: 1,
                line: "AT LENS x 5".into(),
            },
            Op::Send {
                conn: 2,
                splits: vec![3, 7],
                crlf: true,
                line: "RANGE LENS x 0 10 WHERE x > 1".into(),
            },
            Op::Send {
                conn: 0,
                splits: vec![],
                crlf: false,
                line: "".into(),
            },
            Op::Close { conn: 3 },
            Op::Eof {
                conn: 1,
                line: "SHOW STATUS".into(),
            },
            Op::Tick { ms: 17 },
            Op::RunJobs { pick: 99 },
            Op::Io { pick: 12 },
            Op::Restart,
            Op::PowerLoss { after: 3, pick: 77 },
            Op::FailSync,
            Op::DiskFull { full: true },
            Op::DiskFull { full: false },
            Op::FailRead,
            Op::Rot { pick: u64::MAX },
        ];
        for op in ops {
            assert_eq!(Op::from_line(&op.to_line()).unwrap(), op);
        }
    }
}
