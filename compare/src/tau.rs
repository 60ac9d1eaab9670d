//! Tau over the wire: a tau-server process on a fresh data directory (durable, the
//! default), one request-response client per connection.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(bin: &Path, data_dir: &Path, port: u16) -> Result<Server, String> {
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(bin)
            .args(["--bind", &addr, "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", bin.display()))?;
        let t0 = Instant::now();
        while TcpStream::connect(&addr).is_err() {
            if t0.elapsed() > Duration::from_secs(20) {
                return Err(format!("tau-server did not listen on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server { child, addr })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: a graceful stop.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

pub struct Client {
    out: TcpStream,
    inp: BufReader<TcpStream>,
    line: String,
}

impl Client {
    pub fn connect(addr: &str) -> Result<Client, String> {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        let inp = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
        Ok(Client {
            out: s,
            inp,
            line: String::new(),
        })
    }

    /// One statement, one reply line.
    pub fn cmd(&mut self, stmt: &str) -> Result<&str, String> {
        self.out
            .write_all(stmt.as_bytes())
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(|e| format!("send: {e}"))?;
        self.line.clear();
        self.inp
            .read_line(&mut self.line)
            .map_err(|e| format!("receive: {e}"))?;
        Ok(self.line.trim_end())
    }

    pub fn ok(&mut self, stmt: &str) -> Result<(), String> {
        match self.cmd(stmt)? {
            "OK" => Ok(()),
            other => Err(format!(
                "{}: {other}",
                stmt.chars().take(60).collect::<String>()
            )),
        }
    }
}

pub fn batch_line(lens: &str, rows: &[(i64, i64, f64)]) -> String {
    let mut l = format!("BATCH APPEND LENS {lens} {{");
    for (k, (s, e, v)) in rows.iter().enumerate() {
        if k > 0 {
            l.push(';');
        }
        l.push_str(&format!(" {s} {e} {v:?}"));
    }
    l.push_str(" }");
    l
}

/// `VAL f1.5` / `VAL i3` → Some, `VAL NIL` (and a stored null) → None.
pub fn parse_val(reply: &str) -> Result<Option<f64>, String> {
    let v = reply
        .strip_prefix("VAL ")
        .ok_or_else(|| format!("not a VAL reply: {reply}"))?;
    Ok(match v {
        "NIL" | "n" => None,
        _ => Some(parse_num(v)?),
    })
}

fn parse_num(v: &str) -> Result<f64, String> {
    v.get(1..)
        .and_then(|x| x.parse::<f64>().ok())
        .ok_or_else(|| format!("not a number: {v}"))
}

/// `RANGE n; s:e:v; ...`
pub fn parse_range(reply: &str) -> Result<Vec<(i64, i64, f64)>, String> {
    let bad = || format!("not a RANGE reply: {reply}");
    let mut parts = reply.split("; ");
    let head = parts.next().ok_or_else(bad)?;
    let n: usize = head
        .strip_prefix("RANGE ")
        .and_then(|x| x.parse().ok())
        .ok_or_else(bad)?;
    let mut out = Vec::with_capacity(n);
    for p in parts {
        let mut f = p.splitn(3, ':');
        let s = f.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let e = f.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
        let v = parse_num(f.next().ok_or_else(bad)?)?;
        out.push((s, e, v));
    }
    if out.len() != n {
        return Err(bad());
    }
    Ok(out)
}

/// `LAYERS n; id:written_at:min:max; ...` → (id, written_at), oldest first.
pub fn parse_history(reply: &str) -> Result<Vec<(u64, i64)>, String> {
    let bad = || format!("not a LAYERS reply: {}", &reply[..reply.len().min(80)]);
    let mut parts = reply.split("; ");
    parts
        .next()
        .filter(|h| h.starts_with("LAYERS "))
        .ok_or_else(bad)?;
    parts
        .map(|p| {
            let mut f = p.split(':');
            let id = f.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            let w = f.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
            Ok((id, w))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        assert_eq!(parse_val("VAL f-2.5").unwrap(), Some(-2.5));
        assert_eq!(parse_val("VAL i7").unwrap(), Some(7.0));
        assert_eq!(parse_val("VAL NIL").unwrap(), None);
        assert!(parse_val("ERR unknown lens: x").is_err());
        assert_eq!(
            parse_range("RANGE 2; 0:10:f1.5; 13:20:f-3").unwrap(),
            vec![(0, 10, 1.5), (13, 20, -3.0)]
        );
        assert!(parse_range("RANGE 3; 0:10:f1.5").is_err());
        assert_eq!(
            parse_history("LAYERS 2; 1:1000:0:20; 4:1005:3:13").unwrap(),
            vec![(1, 1000), (4, 1005)]
        );
        assert_eq!(
            batch_line("x", &[(0, 10, 1.0), (10, 20, -0.25)]),
            "BATCH APPEND LENS x { 0 10 1.0; 10 20 -0.25 }"
        );
    }
}
