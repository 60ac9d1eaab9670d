//! The TauQL syntax tree and its printer.
//!
//! The printer emits canonical TauQL (upper-case keywords, expressions parenthesised only
//! where the tree needs it, so never nested deeper than any input that parses to them) so that `parse(print(s)) == s` holds for every statement: that law is a
//! property test, and it is what lets logs and the WAL debugging tools show statements.

use crate::value::{Type, Value};
use std::fmt::{self, Display, Formatter, Write as _};

#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    CreateDatabase(String),
    DropDatabase(String),
    UseDatabase(String),
    ShowDatabases,
    CreateLens {
        name: String,
        ty: Type,
    },
    DropLens(String),
    ShowLenses,
    Derive {
        name: String,
        expr: Expr,
    },
    /// `APPEND` (batch = false) and `BATCH APPEND` (batch = true); rows in input order.
    Append {
        lens: String,
        rows: Vec<Row>,
        batch: bool,
    },
    Copy {
        lens: String,
        path: String,
    },
    At {
        lens: String,
        t: i64,
        sel: Selector,
    },
    Range {
        lens: String,
        start: i64,
        end: i64,
        sel: Selector,
        filter: Option<Expr>,
        limit: Option<u64>,
        offset: Option<u64>,
    },
    Reduce {
        lens: String,
        start: i64,
        end: i64,
        sel: Selector,
        func: Func,
    },
    History {
        lens: String,
        span: Option<(i64, i64)>,
    },
    Compact(String),
    StartTransaction,
    Commit,
    Rollback,
    CreateUser {
        name: String,
        password: String,
    },
    DropUser(String),
    ShowUsers,
    Grant {
        perms: Perms,
        db: String,
        user: String,
    },
    Revoke {
        perms: Perms,
        db: String,
        user: String,
    },
    ShowGrants(Option<String>),
    ShowStatus,
    Auth {
        user: String,
        password: String,
    },
    Quit,
}

/// One `<s> <e> <v>` of a write, as written (the value is coerced to the lens type later).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub start: i64,
    pub end: i64,
    pub value: Value,
}

/// Which layers a read sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    Now,
    AsOf(i64),
    Layer(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Func {
    Min,
    Max,
    Sum,
    Count,
    Avg,
    Twavg,
    Integral,
    Duration,
    First,
    Last,
}

impl Func {
    pub const ALL: [Func; 10] = [
        Func::Min,
        Func::Max,
        Func::Sum,
        Func::Count,
        Func::Avg,
        Func::Twavg,
        Func::Integral,
        Func::Duration,
        Func::First,
        Func::Last,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Func::Min => "min",
            Func::Max => "max",
            Func::Sum => "sum",
            Func::Count => "count",
            Func::Avg => "avg",
            Func::Twavg => "twavg",
            Func::Integral => "integral",
            Func::Duration => "duration",
            Func::First => "first",
            Func::Last => "last",
        }
    }
    pub fn from_name(s: &str) -> Option<Func> {
        Func::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
    }
    /// Functions that need int or float inputs.
    pub fn needs_numbers(self) -> bool {
        matches!(
            self,
            Func::Min | Func::Max | Func::Sum | Func::Avg | Func::Twavg | Func::Integral
        )
    }
}

/// A set of CRUDA rights, one bit each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord, Hash)]
pub struct Perms(pub u8);

impl Perms {
    pub const C: Perms = Perms(1);
    pub const R: Perms = Perms(2);
    pub const U: Perms = Perms(4);
    pub const D: Perms = Perms(8);
    pub const A: Perms = Perms(16);
    pub const ALL: Perms = Perms(31);
    pub const LETTERS: [(char, Perms); 5] = [
        ('C', Perms::C),
        ('R', Perms::R),
        ('U', Perms::U),
        ('D', Perms::D),
        ('A', Perms::A),
    ];
    pub fn contains(self, p: Perms) -> bool {
        self.0 & p.0 == p.0
    }
    pub fn union(self, p: Perms) -> Perms {
        Perms(self.0 | p.0)
    }
    pub fn minus(self, p: Perms) -> Perms {
        Perms(self.0 & !p.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn letter(self) -> char {
        Perms::LETTERS
            .iter()
            .find(|(_, p)| *p == self)
            .map(|(c, _)| *c)
            .unwrap_or('?')
    }
}

impl Display for Perms {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (c, p) in Perms::LETTERS {
            if self.contains(p) {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }

    /// Binding strength, as the parser's precedence levels (higher binds tighter).
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 0,
            BinOp::And => 1,
            BinOp::Eq | BinOp::Ne => 2,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 3,
            BinOp::Add | BinOp::Sub => 4,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 5,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Lit(Value),
    Lens(String),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// `f(lens, rel_start, rel_end)`: f over `[t + rel_start, t + rel_end)`.
    Roll {
        func: Func,
        lens: String,
        rel_start: i64,
        rel_end: i64,
    },
}

impl Expr {
    /// Every lens name the expression reads, plain or through a rolling window.
    pub fn lens_refs<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Lens(n) => out.push(n),
            Expr::Roll { lens, .. } => out.push(lens),
            Expr::Neg(e) | Expr::Not(e) => e.lens_refs(out),
            Expr::Bin(_, a, b) => {
                a.lens_refs(out);
                b.lens_refs(out);
            }
        }
    }
}

/// A literal printed so that the lexer reads back the identical value: floats always
/// carry a `.` (else `20.0` would come back as the int `20`), strings are escaped.
pub fn write_literal(out: &mut impl fmt::Write, v: &Value) -> fmt::Result {
    match v {
        Value::Null => out.write_str("null"),
        Value::Int(i) => write!(out, "{i}"),
        Value::Float(f) => {
            let s = format!("{f}");
            if s.contains('.') {
                out.write_str(&s)
            } else {
                write!(out, "{s}.0")
            }
        }
        Value::Str(s) => {
            out.write_char('"')?;
            for c in s.chars() {
                match c {
                    '"' => out.write_str("\\\"")?,
                    '\\' => out.write_str("\\\\")?,
                    c => out.write_char(c)?,
                }
            }
            out.write_char('"')
        }
        Value::Bool(b) => out.write_str(if *b { "true" } else { "false" }),
        Value::Bytes(b) => {
            let mut s = String::from("0x");
            crate::value::push_hex(&mut s, b);
            out.write_str(&s)
        }
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Lit(v) => write_literal(f, v),
            Expr::Lens(n) => f.write_str(n),
            // `- e` with a space: `-5` would read back as the literal -5. Parentheses only
            // where the tree needs them, so that printing never nests deeper than the input
            // did (the parser bounds nesting, and whatever it accepted must read back).
            Expr::Neg(e) => write_operand(f, "- ", e),
            Expr::Not(e) => write_operand(f, "! ", e),
            Expr::Bin(op, a, b) => {
                // Left-associative: a left operand of lower precedence needs parentheses,
                // a right operand of lower or equal precedence too.
                let p = op.precedence();
                let paren = |e: &Expr, strict: bool| match e {
                    Expr::Bin(o, ..) => o.precedence() < p || (strict && o.precedence() == p),
                    _ => false,
                };
                let (pa, pb) = (paren(a, false), paren(b, true));
                let open = |x: bool| if x { "(" } else { "" };
                let close = |x: bool| if x { ")" } else { "" };
                write!(
                    f,
                    "{}{a}{} {} {}{b}{}",
                    open(pa),
                    close(pa),
                    op.symbol(),
                    open(pb),
                    close(pb)
                )
            }
            Expr::Roll {
                func,
                lens,
                rel_start,
                rel_end,
            } => write!(f, "{}({lens}, {rel_start}, {rel_end})", func.name()),
        }
    }
}

/// A unary operator and its operand, parenthesised only when it is a binary expression.
fn write_operand(f: &mut Formatter<'_>, op: &str, e: &Expr) -> fmt::Result {
    match e {
        Expr::Bin(..) => write!(f, "{op}({e})"),
        _ => write!(f, "{op}{e}"),
    }
}

impl Display for Selector {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Now => Ok(()),
            Selector::AsOf(ms) => write!(f, " AS OF {ms}"),
            Selector::Layer(id) => write!(f, " LAYER {id}"),
        }
    }
}

fn write_string_lit(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    write_literal(f, &Value::str(s))
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        use Statement::*;
        match self {
            CreateDatabase(d) => write!(f, "CREATE DATABASE {d}"),
            DropDatabase(d) => write!(f, "DROP DATABASE {d}"),
            UseDatabase(d) => write!(f, "USE DATABASE {d}"),
            ShowDatabases => f.write_str("SHOW DATABASES"),
            CreateLens { name, ty } => write!(f, "CREATE LENS {name} {ty}"),
            DropLens(l) => write!(f, "DROP LENS {l}"),
            ShowLenses => f.write_str("SHOW LENSES"),
            Derive { name, expr } => write!(f, "DERIVE LENS {name} AS {expr}"),
            Append { lens, rows, batch } => {
                if *batch {
                    write!(f, "BATCH APPEND LENS {lens} {{")?;
                    for (i, r) in rows.iter().enumerate() {
                        f.write_str(if i == 0 { " " } else { "; " })?;
                        write!(f, "{} {} ", r.start, r.end)?;
                        write_literal(f, &r.value)?;
                    }
                    f.write_str(" }")
                } else {
                    write!(f, "APPEND LENS {lens}")?;
                    for (i, r) in rows.iter().enumerate() {
                        f.write_str(if i == 0 { " " } else { ", " })?;
                        write!(f, "{} {} ", r.start, r.end)?;
                        write_literal(f, &r.value)?;
                    }
                    Ok(())
                }
            }
            Copy { lens, path } => {
                write!(f, "COPY LENS {lens} FROM ")?;
                write_string_lit(f, path)
            }
            At { lens, t, sel } => write!(f, "AT LENS {lens} {t}{sel}"),
            Range {
                lens,
                start,
                end,
                sel,
                filter,
                limit,
                offset,
            } => {
                write!(f, "RANGE LENS {lens} {start} {end}{sel}")?;
                if let Some(w) = filter {
                    write!(f, " WHERE {w}")?;
                }
                if let Some(l) = limit {
                    write!(f, " LIMIT {l}")?;
                }
                if let Some(o) = offset {
                    write!(f, " OFFSET {o}")?;
                }
                Ok(())
            }
            Reduce {
                lens,
                start,
                end,
                sel,
                func,
            } => write!(
                f,
                "REDUCE LENS {lens} {start} {end}{sel} USING {}",
                func.name()
            ),
            History { lens, span } => {
                write!(f, "HISTORY LENS {lens}")?;
                if let Some((s, e)) = span {
                    write!(f, " {s} {e}")?;
                }
                Ok(())
            }
            Compact(l) => write!(f, "COMPACT LENS {l}"),
            StartTransaction => f.write_str("START TRANSACTION"),
            Commit => f.write_str("COMMIT"),
            Rollback => f.write_str("ROLLBACK"),
            CreateUser { name, password } => {
                write!(f, "CREATE USER {name} PASSWORD ")?;
                write_string_lit(f, password)
            }
            DropUser(u) => write!(f, "DROP USER {u}"),
            ShowUsers => f.write_str("SHOW USERS"),
            Grant { perms, db, user } => write!(f, "GRANT {} ON {db} TO {user}", perm_text(*perms)),
            Revoke { perms, db, user } => {
                write!(f, "REVOKE {} ON {db} FROM {user}", perm_text(*perms))
            }
            ShowGrants(None) => f.write_str("SHOW GRANTS"),
            ShowGrants(Some(u)) => write!(f, "SHOW GRANTS {u}"),
            ShowStatus => f.write_str("SHOW STATUS"),
            Auth { user, password } => {
                write!(f, "AUTH {user} ")?;
                write_string_lit(f, password)
            }
            Quit => f.write_str("QUIT"),
        }
    }
}

fn perm_text(p: Perms) -> String {
    if p == Perms::ALL {
        "*".to_string()
    } else {
        p.to_string()
    }
}
