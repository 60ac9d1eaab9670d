//! Running statements over a connection: pipelining, showing replies in order, counting
//! errors, and the client's own commands (`\load`, `\help`, `\q`).

use crate::conn::Conn;
use crate::load::{Chunker, Limits, LoadType};
use crate::render::render;
use crate::wire::is_err_line;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Duration;

/// At most this many statements await replies...
const MAX_INFLIGHT: usize = 4096;
/// ...and at most this many bytes of them (the server queues pipelined input up to a
/// limit, 64 MiB by default, and closes the connection past it).
const MAX_INFLIGHT_BYTES: usize = 8 << 20;
/// Written without waiting once this much is queued.
const FLUSH_AT: usize = 32 << 10;
/// `\load` keeps at most this many batches in flight.
const LOAD_WINDOW: usize = 8;

pub const HELP: &str = "\
Statements are TauQL, one per line (see the SPEC); each gets one reply line.
Client commands:
  \\load LENS FILE [TYPE]  append rows start,end,value from a CSV file, in BATCH APPEND
                          statements of up to 10,000 rows; TYPE (int, float, str, bool,
                          bytes) checks values on the client; with str every value is a
                          string. A first line whose start is not a number is a header.
  \\help                   this text
  \\q                      quit (also QUIT, EXIT or Ctrl-D)
RANGE, HISTORY and SHOW replies are shown as tables; --raw shows every reply as sent.";

/// What stops a session.
#[derive(Debug)]
pub enum Fatal {
    Io(io::Error),
    /// The server closed the connection with statements unanswered.
    Lost {
        unanswered: usize,
    },
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fatal::Io(e) => write!(f, "{e}"),
            Fatal::Lost { unanswered: 0 } => write!(f, "the server closed the connection"),
            Fatal::Lost { unanswered } => write!(
                f,
                "the server closed the connection; {unanswered} statement(s) got no reply"
            ),
        }
    }
}

impl From<io::Error> for Fatal {
    fn from(e: io::Error) -> Fatal {
        Fatal::Io(e)
    }
}

/// The first two words of a statement, upper-cased.
fn head(stmt: &str) -> (String, String) {
    let mut w = stmt.split_whitespace().map(str::to_ascii_uppercase);
    (w.next().unwrap_or_default(), w.next().unwrap_or_default())
}

/// `QUIT` or `EXIT`: the server answers `OK BYE` and closes.
pub fn is_quit(stmt: &str) -> bool {
    let t = stmt.trim_matches([' ', '\t']);
    t.eq_ignore_ascii_case("QUIT") || t.eq_ignore_ascii_case("EXIT")
}

/// Blank as the server sees it (no reply is sent for such a line).
pub fn is_blank(line: &str) -> bool {
    line.trim_matches([' ', '\t']).is_empty()
}

/// Split a client command's arguments: whitespace-separated words, `"..."` for a word
/// with spaces (`\"` and `\\` inside).
pub fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else {
            return Ok(out);
        };
        let mut w = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quote".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\')) => w.push(e),
                        Some(e) => {
                            w.push('\\');
                            w.push(e);
                        }
                        None => return Err("unterminated quote".into()),
                    },
                    Some(c) => w.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        out.push(w);
    }
}

/// A client command (a line starting with `\`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    Load {
        lens: String,
        path: String,
        ty: LoadType,
    },
}

pub fn parse_command(line: &str) -> Result<Command, String> {
    let t = line.trim();
    let (name, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    match name {
        "\\q" | "\\quit" => Ok(Command::Quit),
        "\\help" | "\\h" | "\\?" => Ok(Command::Help),
        "\\load" => {
            let args = split_args(rest).map_err(|e| format!("\\load: {e}"))?;
            let usage = || "usage: \\load LENS FILE [int|float|str|bool|bytes]".to_string();
            let (lens, path, ty) = match args.as_slice() {
                [l, p] => (l, p, LoadType::Auto),
                [l, p, t] => (l, p, LoadType::parse(t).ok_or_else(usage)?),
                _ => return Err(usage()),
            };
            let ident = {
                let mut c = lens.chars();
                matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
                    && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            };
            if !ident {
                return Err(format!("\\load: not a lens name: {lens:?}"));
            }
            Ok(Command::Load {
                lens: lens.clone(),
                path: path.clone(),
                ty,
            })
        }
        _ => Err(format!("unknown command: {name} (try \\help)")),
    }
}

/// A statement awaiting its reply.
struct Pending {
    stmt: String,
    bytes: usize,
}

pub struct Session<W: Write> {
    pub conn: Conn,
    pub out: W,
    /// Show replies exactly as sent.
    pub raw: bool,
    /// Show a progress bar during `\load` (only when stderr is a terminal).
    pub progress: bool,
    /// Statements answered with `ERR`, and failed client commands.
    pub errors: u64,
    /// Reply lines received.
    pub replies: u64,
    /// The user asked to stop (`\q`, `QUIT`, `EXIT`): later lines are ignored.
    pub quit: bool,
    /// The database selected by the last successful `USE DATABASE` (for the prompt).
    pub database: Option<String>,
    /// A transaction is open (for the prompt).
    pub in_transaction: bool,
    inflight: VecDeque<Pending>,
    inflight_bytes: usize,
}

impl<W: Write> Session<W> {
    pub fn new(conn: Conn, out: W, raw: bool) -> Session<W> {
        Session {
            conn,
            out,
            raw,
            progress: false,
            errors: 0,
            replies: 0,
            quit: false,
            database: None,
            in_transaction: false,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
        }
    }

    /// Statements sent and not yet answered.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Handle one input line: a statement is sent (pipelined: its reply is shown later,
    /// in order); a client command first waits for every reply before it.
    pub fn submit(&mut self, line: &str) -> Result<(), Fatal> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if self.quit || is_blank(line) {
            return Ok(());
        }
        if line.trim_start().starts_with('\\') {
            self.drain()?;
            return match parse_command(line) {
                Ok(Command::Quit) => {
                    self.quit = true;
                    Ok(())
                }
                Ok(Command::Help) => {
                    self.print(HELP);
                    Ok(())
                }
                Ok(Command::Load { lens, path, ty }) => self.load(&lens, &path, ty),
                Err(e) => {
                    self.client_error(&e);
                    Ok(())
                }
            };
        }
        while self.inflight.len() >= MAX_INFLIGHT
            || (self.inflight_bytes + line.len() > MAX_INFLIGHT_BYTES && !self.inflight.is_empty())
        {
            self.wait_one()?;
        }
        self.conn.queue(line);
        self.inflight.push_back(Pending {
            stmt: line.to_string(),
            bytes: line.len() + 1,
        });
        self.inflight_bytes += line.len() + 1;
        if is_quit(line) {
            self.quit = true;
        }
        if self.conn.unsent() >= FLUSH_AT {
            self.conn.pump(Some(Duration::ZERO))?;
        }
        while let Some(reply) = self.conn.try_line() {
            self.answer(reply)?;
        }
        Ok(())
    }

    /// Wait for every outstanding reply.
    pub fn drain(&mut self) -> Result<(), Fatal> {
        while !self.inflight.is_empty() {
            self.wait_one()?;
        }
        let _ = self.out.flush();
        Ok(())
    }

    fn wait_one(&mut self) -> Result<(), Fatal> {
        match self.conn.next_line()? {
            Some(reply) => self.answer(reply),
            None => Err(self.lost()),
        }
    }

    fn lost(&mut self) -> Fatal {
        let unanswered = self.inflight.len();
        self.inflight.clear();
        self.inflight_bytes = 0;
        Fatal::Lost { unanswered }
    }

    /// Show the reply to the oldest outstanding statement.
    fn answer(&mut self, reply: String) -> Result<(), Fatal> {
        if self.replies == 0 && reply.starts_with(['\u{15}', '\u{16}']) {
            // A TLS record (alert or handshake) where a reply line should be.
            let unanswered = self.inflight.len();
            self.inflight.clear();
            self.inflight_bytes = 0;
            return Err(Fatal::Io(io::Error::other(format!(
                "the server answered with TLS ({unanswered} statement(s) unanswered): connect with --tls-ca FILE or --tls-insecure"
            ))));
        }
        self.replies += 1;
        let Some(p) = self.inflight.pop_front() else {
            // A line nobody asked for (the server's own notice before closing, say).
            self.print(&reply);
            if is_err_line(&reply) {
                self.errors += 1;
            }
            return Ok(());
        };
        self.inflight_bytes -= p.bytes;
        let err = is_err_line(&reply);
        if err {
            self.errors += 1;
        }
        let (a, b) = head(&p.stmt);
        match (a.as_str(), b.as_str()) {
            ("USE", "DATABASE") if !err => {
                self.database = p.stmt.split_whitespace().nth(2).map(String::from);
            }
            ("START", "TRANSACTION") if !err => self.in_transaction = true,
            ("COMMIT", _) | ("ROLLBACK", _) => self.in_transaction = false,
            _ => {}
        }
        let shown = render(&p.stmt, &reply, self.raw);
        self.print(&shown);
        Ok(())
    }

    fn print(&mut self, s: &str) {
        // A closed stdout (`tau ... | head`) is not a reason to stop answering.
        let _ = writeln!(self.out, "{s}");
    }

    fn client_error(&mut self, msg: &str) {
        self.errors += 1;
        self.print(&format!("ERR {msg}"));
    }

    /// `\load`: stream the CSV as pipelined `BATCH APPEND`s, at most [`LOAD_WINDOW`]
    /// batches in flight; stop sending at the first bad line or `ERR`.
    pub fn load(&mut self, lens: &str, path: &str, ty: LoadType) -> Result<(), Fatal> {
        self.load_with(lens, path, ty, Limits::default())
    }

    pub fn load_with(
        &mut self,
        lens: &str,
        path: &str,
        ty: LoadType,
        limits: Limits,
    ) -> Result<(), Fatal> {
        self.drain()?;
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.client_error(&format!("\\load {lens}: cannot open {path}: {e}"));
                return Ok(());
            }
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut chunks = Chunker::new(file, lens, ty, limits);
        let bar = if self.progress {
            let b = indicatif::ProgressBar::new(size);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} \\load {prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_prefix(lens.to_string());
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        // (rows, first line, last line) of each batch in flight.
        let mut window: VecDeque<(usize, u64, u64)> = VecDeque::new();
        let (mut rows_ok, mut batches_ok) = (0u64, 0u64);
        let mut first_err: Option<String> = None;
        let mut stop = false;
        loop {
            while !stop && window.len() < LOAD_WINDOW {
                match chunks.next() {
                    None => stop = true,
                    Some(Err(e)) => {
                        first_err.get_or_insert(format!("{path}: {e}"));
                        stop = true;
                    }
                    Some(Ok(c)) => {
                        self.conn.queue(&c.statement);
                        window.push_back((c.rows, c.first_line, c.last_line));
                    }
                }
            }
            let Some((rows, first, last)) = window.pop_front() else {
                break;
            };
            let reply = match self.conn.next_line() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    bar.finish_and_clear();
                    let _ = writeln!(
                        self.out,
                        "ERR \\load {lens}: connection lost after {rows_ok} rows in {batches_ok} batches"
                    );
                    return Err(Fatal::Lost {
                        unanswered: window.len() + 1,
                    });
                }
                Err(e) => {
                    bar.finish_and_clear();
                    return Err(e.into());
                }
            };
            if is_err_line(&reply) {
                first_err.get_or_insert(format!("{path} lines {first}-{last}: {reply}"));
                stop = true;
            } else {
                rows_ok += rows as u64;
                batches_ok += 1;
            }
            bar.set_position(chunks.bytes_read());
            bar.set_message(format!("{rows_ok} rows"));
        }
        bar.finish_and_clear();
        let plural = |n: u64, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "es" });
        let header = match &chunks.header {
            Some((line, text)) => format!("; header line {line} skipped: {text}"),
            None => String::new(),
        };
        match first_err {
            None => self.print(&format!(
                "OK {rows_ok} rows loaded into {lens} ({}{header})",
                plural(batches_ok, "batch")
            )),
            Some(e) => {
                self.client_error(&format!(
                    "\\load {lens}: {e} ({rows_ok} rows loaded in {}, each its own layer, before stopping)",
                    plural(batches_ok, "batch")
                ));
            }
        }
        let _ = self.out.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse_command("\\q"), Ok(Command::Quit));
        assert_eq!(parse_command("  \\help  "), Ok(Command::Help));
        assert_eq!(
            parse_command("\\load temp data.csv"),
            Ok(Command::Load {
                lens: "temp".into(),
                path: "data.csv".into(),
                ty: LoadType::Auto
            })
        );
        assert_eq!(
            parse_command("\\load t \"my data.csv\" STR"),
            Ok(Command::Load {
                lens: "t".into(),
                path: "my data.csv".into(),
                ty: LoadType::Str
            })
        );
        assert!(parse_command("\\load t").is_err());
        assert!(parse_command("\\load t f.csv text").is_err());
        assert!(parse_command("\\load 9t f.csv").is_err());
        assert!(parse_command("\\load t \"f.csv").is_err());
        assert!(parse_command("\\nope")
            .unwrap_err()
            .starts_with("unknown command: \\nope"));
    }

    #[test]
    fn args_split() {
        assert_eq!(
            split_args(r#" a  "b c" "d\"e" f\g "#).unwrap(),
            vec!["a", "b c", "d\"e", "f\\g"]
        );
        assert!(split_args("").unwrap().is_empty());
    }

    #[test]
    fn quit_and_blank() {
        assert!(is_quit(" quit "));
        assert!(is_quit("EXIT"));
        assert!(!is_quit("QUIT now"));
        assert!(is_blank(" \t "));
        assert!(!is_blank("\u{b}"));
    }
}
