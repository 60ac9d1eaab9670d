//! `\load LENS file.csv [TYPE]`: read `start,end,value` rows from a CSV file and turn them
//! into `BATCH APPEND` statements of a bounded size.
//!
//! The file format (also in docs/CLIENT.md):
//! - one row per record: `start,end,value`; `start` and `end` are integers, `start < end`;
//! - a first record whose `start` is not an integer is a header and is skipped (so
//!   `start,end,value` as the first line is fine); any later such record is an error;
//! - records starting with `#` and blank lines are skipped; fields may be quoted (RFC 4180);
//! - rows may come in any order but must not overlap one another anywhere in the file;
//! - values: see [`value_literal`].

use crate::wire::{
    float_literal, is_bytes_literal, is_float_literal, is_int_literal, string_literal,
};
use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

/// How the value column is read. `Auto` reads each value as the TauQL literal it looks
/// like, and anything else as a string; naming the lens type checks every value on the
/// client, and with `Str` every value is a string (except `null`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadType {
    Auto,
    Int,
    Float,
    Str,
    Bool,
    Bytes,
}

impl LoadType {
    pub fn parse(s: &str) -> Option<LoadType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => LoadType::Auto,
            "int" => LoadType::Int,
            "float" => LoadType::Float,
            "str" => LoadType::Str,
            "bool" => LoadType::Bool,
            "bytes" => LoadType::Bytes,
            _ => return None,
        })
    }
}

fn blank_trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// The TauQL literal for one CSV value field.
///
/// - every type: `null` (any case, surrounding blanks ignored) is null;
/// - `Auto`: an int (`-?[0-9]+`, also `+5`), a float (`1.5`, `-2.0e3`, also `1e5`, `.5`),
///   `true`/`false`, a bytes literal `0x..`, and otherwise the field verbatim as a string;
/// - `Int`, `Float`, `Bool` (`true`/`false`/`1`/`0`), `Bytes` (`0x..`): the value must be
///   one, or the row is an error;
/// - `Str`: the field verbatim.
///
/// A string holding a line break cannot be sent (a statement is one line): error.
pub fn value_literal(field: &str, ty: LoadType) -> Result<String, String> {
    let t = blank_trim(field);
    if t.eq_ignore_ascii_case("null") {
        return Ok("null".into());
    }
    let string = || {
        string_literal(field).ok_or_else(|| "a value with a line break cannot be sent".to_string())
    };
    let int = || -> Option<Result<String, String>> {
        let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(match t.parse::<i64>() {
            Ok(_) if is_int_literal(t) => Ok(t.to_string()),
            Ok(i) => Ok(i.to_string()),
            Err(_) => Err(format!("integer out of range: {t}")),
        })
    };
    let float = || -> Option<Result<String, String>> {
        let numeric = !t.is_empty()
            && t.bytes().any(|b| b.is_ascii_digit())
            && t.bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
        if !numeric {
            return None;
        }
        Some(match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(if is_float_literal(t) {
                t.to_string()
            } else {
                float_literal(f).expect("finite")
            }),
            Ok(_) => Err(format!("float out of range: {t}")),
            Err(_) => Err(format!("invalid number: {t}")),
        })
    };
    let boolean = || {
        if t.eq_ignore_ascii_case("true") {
            Some("true".to_string())
        } else if t.eq_ignore_ascii_case("false") {
            Some("false".to_string())
        } else {
            None
        }
    };
    let bytes = || {
        let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"))?;
        let lower = format!("0x{}", hex.to_ascii_lowercase());
        is_bytes_literal(&lower).then_some(lower)
    };
    match ty {
        LoadType::Auto => {
            if let Some(r) = int() {
                return r;
            }
            if let Some(b) = bytes() {
                return Ok(b);
            }
            if let Some(r) = float() {
                return r;
            }
            if let Some(b) = boolean() {
                return Ok(b);
            }
            string()
        }
        LoadType::Int => int().unwrap_or_else(|| Err(format!("expected int, found {t:?}"))),
        LoadType::Float => float().unwrap_or_else(|| Err(format!("expected float, found {t:?}"))),
        LoadType::Bool => match t {
            "1" => Ok("true".into()),
            "0" => Ok("false".into()),
            _ => boolean().ok_or_else(|| format!("expected bool, found {t:?}")),
        },
        LoadType::Bytes => bytes().ok_or_else(|| format!("expected bytes (0x..), found {t:?}")),
        LoadType::Str => string(),
    }
}

/// A problem with the file, at a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// One `BATCH APPEND` statement and the file lines its rows came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub statement: String,
    pub rows: usize,
    pub first_line: u64,
    pub last_line: u64,
}

/// How big one statement may get.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Rows per statement.
    pub max_rows: usize,
    /// Target statement length in bytes: a chunk is closed before a row would take it
    /// past this.
    pub max_bytes: usize,
    /// No statement may be longer than this (the server's default line limit, 1 MiB, less
    /// a margin); a single row that alone would be longer is an error.
    pub hard_max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_rows: 10_000,
            max_bytes: 256 << 10,
            hard_max_bytes: (1 << 20) - 64,
        }
    }
}

/// The union of the intervals seen so far, as disjoint `start -> end` runs (touching runs
/// merged), so a file of contiguous rows costs one entry.
#[derive(Default)]
struct Coverage {
    runs: BTreeMap<i64, i64>,
}

impl Coverage {
    /// Add `[s, e)`; false if it overlaps what is there.
    fn insert(&mut self, s: i64, e: i64) -> bool {
        let prev = self.runs.range(..=s).next_back().map(|(&a, &b)| (a, b));
        let next = self.runs.range(s..).next().map(|(&a, &b)| (a, b));
        if prev.is_some_and(|(_, pe)| pe > s) || next.is_some_and(|(ns, _)| ns < e) {
            return false;
        }
        let mut start = s;
        let mut end = e;
        if let Some((ps, pe)) = prev {
            if pe == s {
                self.runs.remove(&ps);
                start = ps;
            }
        }
        if let Some((ns, ne)) = next {
            if ns == e {
                self.runs.remove(&ns);
                end = ne;
            }
        }
        self.runs.insert(start, end);
        true
    }
}

/// The longest input line read (a longer one is an error, not an allocation).
const MAX_INPUT_LINE: usize = 4 << 20;

/// The file, less its blank and `#` comment lines, one record per line, with the line
/// numbers of the lines passed on. (csv's own line numbers count from the end of the
/// previous record, so they are wrong after skipped lines.)
struct Lines<R: BufRead> {
    inner: R,
    line_no: u64,
    raw_bytes: u64,
    buf: Vec<u8>,
    pos: usize,
    /// Line numbers of lines handed to csv and not yet matched with their record.
    lines: VecDeque<u64>,
    too_long: Option<u64>,
}

impl<R: BufRead> Read for Lines<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            let n = (&mut self.inner)
                .take(MAX_INPUT_LINE as u64 + 1)
                .read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(0);
            }
            self.raw_bytes += n as u64;
            self.line_no += 1;
            if self.buf.last() == Some(&b'\n') {
                self.buf.pop();
            } else if n > MAX_INPUT_LINE {
                self.too_long = Some(self.line_no);
                self.buf.clear();
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            let first = self.buf.iter().find(|&&b| b != b' ' && b != b'\t');
            if first.is_none() || first == Some(&b'#') {
                self.buf.clear();
                continue;
            }
            self.buf.push(b'\n');
            self.lines.push_back(self.line_no);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads the CSV and yields chunks; stops after the first error.
pub struct Chunker<R: Read> {
    rdr: csv::Reader<Lines<BufReader<R>>>,
    prefix: String,
    ty: LoadType,
    limits: Limits,
    record: csv::StringRecord,
    /// A row read but not yet placed: (line, text).
    pending: Option<(u64, String)>,
    coverage: Coverage,
    seen_record: bool,
    done: bool,
    /// The header record that was skipped, if any: (line, text).
    pub header: Option<(u64, String)>,
    pub rows_read: u64,
}

impl<R: Read> Chunker<R> {
    pub fn new(input: R, lens: &str, ty: LoadType, limits: Limits) -> Chunker<R> {
        let lines = Lines {
            inner: BufReader::with_capacity(1 << 16, input),
            line_no: 0,
            raw_bytes: 0,
            buf: Vec::new(),
            pos: 0,
            lines: VecDeque::new(),
            too_long: None,
        };
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(lines);
        Chunker {
            rdr,
            prefix: format!("BATCH APPEND LENS {lens} {{ "),
            ty,
            limits,
            record: csv::StringRecord::new(),
            pending: None,
            coverage: Coverage::default(),
            seen_record: false,
            done: false,
            header: None,
            rows_read: 0,
        }
    }

    /// Bytes of the input consumed so far (for the progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.rdr.get_ref().raw_bytes
    }

    /// The next row as `start end literal`, or `None` at the end of the file.
    fn next_row(&mut self) -> Result<Option<(u64, String)>, LoadError> {
        loop {
            let read = self.rdr.read_record(&mut self.record);
            let lines = &mut self.rdr.get_mut().lines;
            let line = match &read {
                Ok(true) => lines.pop_front().unwrap_or(0),
                _ => lines.front().copied().unwrap_or(0),
            };
            let err = |message: String| LoadError { line, message };
            let more = read.map_err(|e| match e.kind() {
                csv::ErrorKind::Utf8 { .. } => err("invalid UTF-8".into()),
                csv::ErrorKind::Io(io) => match self.rdr.get_ref().too_long {
                    Some(l) => LoadError {
                        line: l,
                        message: format!("line longer than {MAX_INPUT_LINE} bytes"),
                    },
                    None => err(format!("cannot read the file: {io}")),
                },
                _ => err(e.to_string()),
            })?;
            if !more {
                return Ok(None);
            }
            let r = &self.record;
            if r.iter().any(|f| f.contains('\n')) {
                return Err(err(
                    "a quoted field spans lines (a statement is one line: not supported)".into(),
                ));
            }
            let first = !self.seen_record;
            self.seen_record = true;
            let start: Option<i64> = r.get(0).and_then(|f| blank_trim(f).parse().ok());
            if first && start.is_none() {
                self.header = Some((line, r.iter().collect::<Vec<_>>().join(",")));
                continue;
            }
            if r.len() != 3 {
                return Err(err(format!(
                    "expected 3 fields (start,end,value), found {}",
                    r.len()
                )));
            }
            let start = start.ok_or_else(|| err(format!("invalid start: {:?}", &r[0])))?;
            let end: i64 = blank_trim(&r[1])
                .parse()
                .map_err(|_| err(format!("invalid end: {:?}", &r[1])))?;
            if start >= end {
                return Err(err("invalid range (start >= end)".into()));
            }
            let lit = value_literal(&r[2], self.ty).map_err(err)?;
            if !self.coverage.insert(start, end) {
                return Err(err(format!(
                    "[{start}, {end}) overlaps an earlier row (rows of one \\load must not overlap)"
                )));
            }
            self.rows_read += 1;
            let text = format!("{start} {end} {lit}");
            if self.prefix.len() + text.len() + 2 > self.limits.hard_max_bytes {
                return Err(err(format!(
                    "row too long for one statement ({} bytes)",
                    text.len()
                )));
            }
            return Ok(Some((line, text)));
        }
    }
}

impl<R: Read> Iterator for Chunker<R> {
    type Item = Result<Chunk, LoadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut stmt = self.prefix.clone();
        let mut rows = 0usize;
        let (mut first_line, mut last_line) = (0, 0);
        loop {
            let row = match self.pending.take() {
                Some(r) => Some(r),
                None => match self.next_row() {
                    Ok(r) => r,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            };
            let Some((line, text)) = row else {
                self.done = true;
                break;
            };
            let fits = rows < self.limits.max_rows
                && stmt.len() + 2 + text.len() + 2 <= self.limits.max_bytes;
            if rows > 0 && !fits {
                self.pending = Some((line, text));
                break;
            }
            if rows > 0 {
                stmt.push_str("; ");
            } else {
                first_line = line;
            }
            stmt.push_str(&text);
            last_line = line;
            rows += 1;
        }
        if rows == 0 {
            return None;
        }
        stmt.push_str(" }");
        Some(Ok(Chunk {
            statement: stmt,
            rows,
            first_line,
            last_line,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(csv: &str, limits: Limits) -> Vec<Result<Chunk, LoadError>> {
        Chunker::new(csv.as_bytes(), "x", LoadType::Auto, limits).collect()
    }

    #[test]
    fn literals_auto() {
        let a = |s| value_literal(s, LoadType::Auto);
        assert_eq!(a("42").unwrap(), "42");
        assert_eq!(a(" -42 ").unwrap(), "-42");
        assert_eq!(a("+42").unwrap(), "42");
        assert_eq!(a("1.5").unwrap(), "1.5");
        assert_eq!(a("1e5").unwrap(), "100000.0");
        assert_eq!(a(".5").unwrap(), "0.5");
        assert_eq!(a("2.0E-3").unwrap(), "2.0E-3");
        assert_eq!(a("TRUE").unwrap(), "true");
        assert_eq!(a("Null").unwrap(), "null");
        assert_eq!(a("0xAB").unwrap(), "0xab");
        assert_eq!(a("hello world").unwrap(), "\"hello world\"");
        assert_eq!(a("").unwrap(), "\"\"");
        assert_eq!(a("say \"hi\"").unwrap(), r#""say \"hi\"""#);
        assert_eq!(a("nan").unwrap(), "\"nan\"");
        assert!(a("99999999999999999999").is_err());
        assert!(a("1e999").is_err());
        assert!(a("1.2.3").is_err());
        assert!(a("a\nb").is_err());
        assert_eq!(a("a\rb").unwrap(), "\"a\rb\"");
    }

    #[test]
    fn literals_typed() {
        assert_eq!(value_literal("42", LoadType::Str).unwrap(), "\"42\"");
        assert_eq!(value_literal(" a ", LoadType::Str).unwrap(), "\" a \"");
        assert_eq!(value_literal("null", LoadType::Str).unwrap(), "null");
        assert_eq!(value_literal("42", LoadType::Float).unwrap(), "42.0");
        assert_eq!(value_literal("1e3", LoadType::Float).unwrap(), "1000.0");
        assert!(value_literal("abc", LoadType::Float).is_err());
        assert!(value_literal("1.5", LoadType::Int).is_err());
        assert_eq!(value_literal("1", LoadType::Bool).unwrap(), "true");
        assert!(value_literal("yes", LoadType::Bool).is_err());
        assert_eq!(value_literal("0x0A", LoadType::Bytes).unwrap(), "0x0a");
        assert!(value_literal("0x0", LoadType::Bytes).is_err());
        assert_eq!(LoadType::parse("STR"), Some(LoadType::Str));
        assert_eq!(LoadType::parse("text"), None);
    }

    #[test]
    fn header_comments_and_blank_lines() {
        let c = chunks(
            "start,end,value\n# a comment\n\n0,10,1\n  \n10,20,\"a,b\"\n   # indented comment\n",
            Limits::default(),
        );
        assert_eq!(
            c,
            vec![Ok(Chunk {
                statement: "BATCH APPEND LENS x { 0 10 1; 10 20 \"a,b\" }".into(),
                rows: 2,
                first_line: 4,
                last_line: 6
            })]
        );
    }

    #[test]
    fn only_the_first_record_may_be_a_header() {
        let c = chunks("0,1,1\nstart,end,value\n", Limits::default());
        assert_eq!(
            c,
            vec![Err(LoadError {
                line: 2,
                message: "invalid start: \"start\"".into()
            })]
        );
    }

    #[test]
    fn errors_name_lines() {
        let e = |csv: &str| match chunks(csv, Limits::default()).pop() {
            Some(Err(e)) => e.to_string(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert_eq!(e("0,1,1\n5,5,1\n"), "line 2: invalid range (start >= end)");
        assert_eq!(
            e("0,1\n"),
            "line 1: expected 3 fields (start,end,value), found 2"
        );
        assert_eq!(e("0,1,1\n0,x,1\n"), "line 2: invalid end: \"x\"");
        assert_eq!(
            e("0,10,1\n20,30,1\n5,12,1\n"),
            "line 3: [5, 12) overlaps an earlier row (rows of one \\load must not overlap)"
        );
        assert_eq!(
            e("0,1,1\n\n0,1,\"a\nb\"\n"),
            "line 3: a quoted field spans lines (a statement is one line: not supported)"
        );
        assert_eq!(
            e("\n\n# c\n0,1,1\r\n1,2\r\n"),
            "line 5: expected 3 fields (start,end,value), found 2"
        );
        let bad: &[u8] = b"0,1,1\n1,2,\xff\n";
        let last = Chunker::new(bad, "x", LoadType::Auto, Limits::default()).last();
        assert_eq!(last.unwrap().unwrap_err().line, 2);
    }

    #[test]
    fn empty_files_give_no_chunks() {
        assert!(chunks("", Limits::default()).is_empty());
        assert!(chunks("start,end,value\n# nothing\n", Limits::default()).is_empty());
    }

    #[test]
    fn chunks_respect_limits() {
        let csv: String = (0..25).map(|i| format!("{i},{},{i}\n", i + 1)).collect();
        let limits = Limits {
            max_rows: 10,
            ..Limits::default()
        };
        let c: Vec<Chunk> = chunks(&csv, limits)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            c.iter().map(|c| c.rows).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        assert_eq!((c[1].first_line, c[1].last_line), (11, 20));
        let limits = Limits {
            max_bytes: 60,
            ..Limits::default()
        };
        for c in chunks(&csv, limits) {
            assert!(c.unwrap().statement.len() <= 60);
        }
    }

    #[test]
    fn a_row_longer_than_a_line_is_an_error() {
        let csv = format!("0,1,{}\n", "a".repeat(2 << 20));
        let e = chunks(&csv, Limits::default()).pop().unwrap().unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.starts_with("row too long"));
    }

    #[test]
    fn coverage_merges_and_detects() {
        let mut c = Coverage::default();
        assert!(c.insert(10, 20));
        assert!(c.insert(0, 10));
        assert!(c.insert(20, 30));
        assert_eq!(c.runs.len(), 1);
        assert!(!c.insert(29, 31));
        assert!(!c.insert(-5, 1));
        assert!(!c.insert(5, 6));
        assert!(c.insert(40, 50));
        assert!(!c.insert(35, 45));
        assert!(c.insert(30, 40));
        assert_eq!(c.runs.into_iter().collect::<Vec<_>>(), vec![(0, 50)]);
    }
}
