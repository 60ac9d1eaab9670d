//! TauQL lexer and recursive-descent parser.
//!
//! Errors carry a 0-based character column and say what was expected and what was found
//! (`expected USING, found "USNG"`). The parser never panics: every index is checked and
//! every number is parsed with overflow checks (the fuzz test feeds it arbitrary bytes).

use crate::ast::{BinOp, Expr, Func, Perms, Row, Selector, Statement};
use crate::value::{parse_hex, Type, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 0-based character offset into the line.
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "parse error at column {}: {}", self.column, self.message)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Word,
    Int,
    Float,
    Str(String),
    Bytes(Vec<u8>),
    Sym(&'static str),
    End,
}

#[derive(Clone, Debug)]
struct Tok {
    kind: Kind,
    /// Byte offsets into the line.
    start: usize,
    end: usize,
}

const SYMBOLS: [&str; 19] = [
    "||", "&&", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "!", "(", ")", ",", ";",
    "{",
];

fn col(src: &str, byte: usize) -> usize {
    src.get(..byte).map_or(byte, |s| s.chars().count())
}

fn lex(src: &str) -> Result<Vec<Tok>, ParseError> {
    let b = src.as_bytes();
    let mut toks = Vec::with_capacity(b.len() / 4 + 2);
    let mut i = 0;
    let err = |at: usize, m: &str| ParseError {
        column: col(src, at),
        message: m.to_string(),
    };
    while i < b.len() {
        let c = b[i];
        if c == b' ' || c == b'\t' {
            i += 1;
            continue;
        }
        let start = i;
        let kind = if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Kind::Word
        } else if c == b'0' && i + 1 < b.len() && (b[i + 1] == b'x' || b[i + 1] == b'X') {
            i += 2;
            let h = i;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                return Err(err(start, "invalid bytes literal"));
            }
            match parse_hex(&src[h..i]) {
                Ok(v) => Kind::Bytes(v),
                Err(m) => return Err(err(start, &format!("invalid bytes literal: {m}"))),
            }
        } else if c.is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let mut float = false;
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                float = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    float = true;
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            if i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                return Err(err(start, "invalid number"));
            }
            if float {
                Kind::Float
            } else {
                Kind::Int
            }
        } else if c == b'"' {
            i += 1;
            let mut s = String::new();
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    b'\\' => match b.get(i + 1) {
                        Some(b'"') => {
                            s.push('"');
                            i += 2;
                        }
                        Some(b'\\') => {
                            s.push('\\');
                            i += 2;
                        }
                        _ => return Err(err(i, "invalid escape in string (only \\\" and \\\\)")),
                    },
                    _ => {
                        // Copy a run of plain bytes; the line is valid UTF-8 and the run
                        // stops only at ASCII bytes, so the slice is on char boundaries.
                        let run = i;
                        while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                            i += 1;
                        }
                        s.push_str(&src[run..i]);
                    }
                }
            }
            if !closed {
                return Err(err(start, "unterminated string"));
            }
            Kind::Str(s)
        } else {
            let rest = &src[i..];
            match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
                Some(s) => {
                    i += s.len();
                    Kind::Sym(s)
                }
                None if c == b'}' => {
                    i += 1;
                    Kind::Sym("}")
                }
                None => {
                    let ch = rest.chars().next().unwrap_or('?');
                    return Err(err(start, &format!("unexpected character {ch:?}")));
                }
            }
        };
        toks.push(Tok {
            kind,
            start,
            end: i,
        });
    }
    toks.push(Tok {
        kind: Kind::End,
        start: b.len(),
        end: b.len(),
    });
    Ok(toks)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    i: usize,
    depth: usize,
    /// Expression nodes built so far in this statement (see [`MAX_EXPR_NODES`]).
    nodes: usize,
}

/// The most operators and operands one statement's expressions may hold. Evaluation,
/// type checking, printing and dropping an expression recurse over its tree, so the tree
/// must be bounded in size as well as in nesting: a 200,000-term `x + x + ... + x` is a
/// left-deep chain 200,000 levels high that overflowed a job thread's stack.
pub const MAX_EXPR_NODES: usize = 1024;

type PResult<T> = Result<T, ParseError>;

const RESERVED: [&str; 3] = ["true", "false", "null"];

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        // The last token is always End, and `i` never passes it.
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn peek2(&self) -> &Tok {
        &self.toks[(self.i + 1).min(self.toks.len() - 1)]
    }
    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if t.kind != Kind::End {
            self.i += 1;
        }
        t
    }
    fn text(&self, t: &Tok) -> &'a str {
        &self.src[t.start..t.end]
    }
    fn found(&self, t: &Tok) -> String {
        match t.kind {
            Kind::End => "end of line".to_string(),
            _ => format!("{:?}", self.text(t)),
        }
    }
    fn error_at(&self, t: &Tok, expected: &str) -> ParseError {
        ParseError {
            column: col(self.src, t.start),
            message: format!("expected {expected}, found {}", self.found(t)),
        }
    }
    fn fail<T>(&self, expected: &str) -> PResult<T> {
        Err(self.error_at(self.peek(), expected))
    }
    fn is_kw(&self, kw: &str) -> bool {
        let t = self.peek();
        t.kind == Kind::Word && self.text(t).eq_ignore_ascii_case(kw)
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.fail(kw)
        }
    }
    fn is_sym(&self, s: &str) -> bool {
        self.peek().kind == Kind::Sym(sym_static(s))
    }
    fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn sym(&mut self, s: &str) -> PResult<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            self.fail(&format!("\"{s}\""))
        }
    }
    fn name(&mut self, what: &str) -> PResult<String> {
        let t = self.peek().clone();
        if t.kind == Kind::Word {
            let s = self.text(&t);
            if !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)) {
                self.i += 1;
                return Ok(s.to_string());
            }
        }
        Err(self.error_at(&t, what))
    }
    fn end(&mut self) -> PResult<()> {
        if self.peek().kind == Kind::End {
            Ok(())
        } else {
            self.fail("end of line")
        }
    }

    /// Is there a `-` directly followed (no space) by a number?
    fn negative_number_ahead(&self) -> bool {
        let (m, n) = (self.peek(), self.peek2());
        m.kind == Kind::Sym("-") && matches!(n.kind, Kind::Int | Kind::Float) && m.end == n.start
    }

    /// An int literal, `-?[0-9]+`.
    fn int(&mut self, what: &str) -> PResult<i64> {
        let neg = self.negative_number_ahead();
        let start_tok = self.peek().clone();
        if neg {
            self.i += 1;
        }
        let t = self.peek().clone();
        if t.kind != Kind::Int {
            return Err(self.error_at(&start_tok, what));
        }
        self.i += 1;
        let digits = self.text(&t);
        let mag: u64 = digits.parse().map_err(|_| self.out_of_range(&start_tok))?;
        if neg {
            if mag > i64::MAX as u64 + 1 {
                return Err(self.out_of_range(&start_tok));
            }
            Ok((mag as i64).wrapping_neg())
        } else {
            i64::try_from(mag).map_err(|_| self.out_of_range(&start_tok))
        }
    }
    fn out_of_range(&self, t: &Tok) -> ParseError {
        ParseError {
            column: col(self.src, t.start),
            message: "integer out of range".into(),
        }
    }
    fn count(&mut self, what: &str) -> PResult<u64> {
        let t = self.peek().clone();
        if t.kind != Kind::Int {
            return Err(self.error_at(&t, what));
        }
        self.i += 1;
        self.text(&t).parse().map_err(|_| self.out_of_range(&t))
    }

    /// Any literal: number, string, bool, null, bytes.
    fn literal(&mut self) -> PResult<Value> {
        let t = self.peek().clone();
        match &t.kind {
            Kind::Int => Ok(Value::Int(self.int("a value")?)),
            Kind::Sym("-") if self.negative_number_ahead() => {
                if self.peek2().kind == Kind::Int {
                    Ok(Value::Int(self.int("a value")?))
                } else {
                    self.i += 1;
                    self.float(&t, true)
                }
            }
            Kind::Float => self.float(&t, false),
            Kind::Str(s) => {
                self.i += 1;
                Ok(Value::str(s))
            }
            Kind::Bytes(b) => {
                self.i += 1;
                Ok(Value::bytes(b))
            }
            Kind::Word => {
                let w = self.text(&t);
                let v = if w.eq_ignore_ascii_case("true") {
                    Value::Bool(true)
                } else if w.eq_ignore_ascii_case("false") {
                    Value::Bool(false)
                } else if w.eq_ignore_ascii_case("null") {
                    Value::Null
                } else {
                    return Err(self.error_at(&t, "a value"));
                };
                self.i += 1;
                Ok(v)
            }
            _ => Err(self.error_at(&t, "a value")),
        }
    }
    fn float(&mut self, start: &Tok, neg: bool) -> PResult<Value> {
        let t = self.bump();
        let text = self.text(&t);
        let f: f64 = text.parse().map_err(|_| ParseError {
            column: col(self.src, start.start),
            message: "invalid float".into(),
        })?;
        if !f.is_finite() {
            return Err(ParseError {
                column: col(self.src, start.start),
                message: "float out of range".into(),
            });
        }
        Ok(Value::Float(if neg { -f } else { f }))
    }
    fn string(&mut self, what: &str) -> PResult<String> {
        let t = self.peek().clone();
        if let Kind::Str(s) = &t.kind {
            self.i += 1;
            Ok(s.clone())
        } else {
            Err(self.error_at(&t, what))
        }
    }

    /// A wall-clock time: ms, or an RFC 3339 string literal (SPEC v0.2).
    fn time_ms(&mut self) -> PResult<i64> {
        let t = self.peek().clone();
        if let Kind::Str(s) = &t.kind {
            self.i += 1;
            return crate::timestamp::parse_rfc3339(s)
                .map_err(|why| self.error_at(&t, &format!("an RFC 3339 timestamp ({why})")));
        }
        self.int("a time in ms or an RFC 3339 timestamp")
    }

    fn selector(&mut self) -> PResult<Selector> {
        if self.eat_kw("AS") {
            self.kw("OF")?;
            Ok(Selector::AsOf(self.time_ms()?))
        } else if self.eat_kw("LAYER") {
            Ok(Selector::Layer(self.count("a layer id")?))
        } else {
            Ok(Selector::Now)
        }
    }

    fn row(&mut self) -> PResult<Row> {
        let start = self.int("a start time")?;
        let end = self.int("an end time")?;
        let value = self.literal()?;
        Ok(Row { start, end, value })
    }

    fn statement(&mut self) -> PResult<Statement> {
        use Statement as S;
        let first = self.peek().clone();
        if first.kind != Kind::Word {
            return Err(self.error_at(&first, "a statement"));
        }
        let w = self.text(&first).to_ascii_uppercase();
        self.i += 1;
        let st = match w.as_str() {
            "CREATE" => {
                if self.eat_kw("DATABASE") {
                    S::CreateDatabase(self.name("a database name")?)
                } else if self.eat_kw("LENS") {
                    let name = self.name("a lens name")?;
                    let t = self.peek().clone();
                    let ty = (t.kind == Kind::Word)
                        .then(|| Type::from_name(self.text(&t)))
                        .flatten()
                        .ok_or_else(|| {
                            self.error_at(&t, "a type (int, float, str, bool, bytes)")
                        })?;
                    self.i += 1;
                    S::CreateLens { name, ty }
                } else if self.eat_kw("USER") {
                    let name = self.name("a user name")?;
                    self.kw("PASSWORD")?;
                    let password = self.string("a password string")?;
                    S::CreateUser { name, password }
                } else {
                    return self.fail("DATABASE, LENS or USER");
                }
            }
            "DROP" => {
                if self.eat_kw("DATABASE") {
                    S::DropDatabase(self.name("a database name")?)
                } else if self.eat_kw("LENS") {
                    S::DropLens(self.name("a lens name")?)
                } else if self.eat_kw("USER") {
                    S::DropUser(self.name("a user name")?)
                } else {
                    return self.fail("DATABASE, LENS or USER");
                }
            }
            "USE" => {
                self.kw("DATABASE")?;
                S::UseDatabase(self.name("a database name")?)
            }
            "SHOW" => {
                if self.eat_kw("DATABASES") {
                    S::ShowDatabases
                } else if self.eat_kw("LENSES") {
                    S::ShowLenses
                } else if self.eat_kw("USERS") {
                    S::ShowUsers
                } else if self.eat_kw("STATUS") {
                    S::ShowStatus
                } else if self.eat_kw("GRANTS") {
                    if self.peek().kind == Kind::End {
                        S::ShowGrants(None)
                    } else {
                        S::ShowGrants(Some(self.name("a user name")?))
                    }
                } else {
                    return self.fail("DATABASES, LENSES, USERS, GRANTS or STATUS");
                }
            }
            "DERIVE" => {
                self.kw("LENS")?;
                let name = self.name("a lens name")?;
                self.kw("AS")?;
                let expr = self.expr()?;
                S::Derive { name, expr }
            }
            "APPEND" => {
                self.kw("LENS")?;
                let lens = self.name("a lens name")?;
                let mut rows = vec![self.row()?];
                while self.eat_sym(",") {
                    rows.push(self.row()?);
                }
                S::Append {
                    lens,
                    rows,
                    batch: false,
                }
            }
            "BATCH" => {
                self.kw("APPEND")?;
                self.kw("LENS")?;
                let lens = self.name("a lens name")?;
                self.sym("{")?;
                let mut rows = Vec::new();
                if !self.eat_sym("}") {
                    loop {
                        rows.push(self.row()?);
                        if self.eat_sym(";") {
                            continue;
                        }
                        if self.eat_sym("}") {
                            break;
                        }
                        return self.fail("\";\" or \"}\"");
                    }
                }
                S::Append {
                    lens,
                    rows,
                    batch: true,
                }
            }
            "COPY" => {
                self.kw("LENS")?;
                let lens = self.name("a lens name")?;
                self.kw("FROM")?;
                let path = self.string("a file name string")?;
                S::Copy { lens, path }
            }
            "AT" => {
                self.kw("LENS")?;
                let lens = self.name("a lens name")?;
                let t = self.int("a time")?;
                let sel = self.selector()?;
                S::At { lens, t, sel }
            }
            "RANGE" => {
                self.kw("LENS")?;
                let lens = self.name("a lens name")?;
                let start = self.int("a start time")?;
                let end = self.int("an end time")?;
                let sel = self.selector()?;
                let filter = if self.eat_kw("WHERE") {
                    Some(self.expr()?)
                } else {
                    None
                };
                let (mut limit, mut offset) = (None, None);
                loop {
                    if limit.is_none() && self.eat_kw("LIMIT") {
                        limit = Some(self.count("a count")?);
                    } else if offset.is_none() && self.eat_kw("OFFSET") {
                        offset = Some(self.count("a count")?);
                    } else {
                        break;
                    }
                }
                S::Range {
                    lens,
                    start,
                    end,
                    sel,
                    filter,
                    limit,
                    offset,
                }
            }
            "REDUCE" => {
                self.kw("LENS")?;
                let lens = self.name("a lens name")?;
                let start = self.int("a start time")?;
                let end = self.int("an end time")?;
                let sel = self.selector()?;
                self.kw("USING")?;
                let t = self.peek().clone();
                let func = (t.kind == Kind::Word)
                    .then(|| Func::from_name(self.text(&t)))
                    .flatten()
                    .ok_or_else(|| self.error_at(&t, "a reduce function"))?;
                self.i += 1;
                S::Reduce {
                    lens,
                    start,
                    end,
                    sel,
                    func,
                }
            }
            "HISTORY" => {
                self.kw("LENS")?;
                let lens = self.name("a lens name")?;
                let span = if self.peek().kind == Kind::End {
                    None
                } else {
                    let s = self.int("a start time")?;
                    Some((s, self.int("an end time")?))
                };
                S::History { lens, span }
            }
            "COMPACT" => {
                self.kw("LENS")?;
                S::Compact(self.name("a lens name")?)
            }
            "START" => {
                self.kw("TRANSACTION")?;
                S::StartTransaction
            }
            "COMMIT" => S::Commit,
            "ROLLBACK" => S::Rollback,
            "GRANT" | "REVOKE" => {
                let perms = self.perms()?;
                self.kw("ON")?;
                let db = if self.eat_sym("*") {
                    "*".to_string()
                } else {
                    self.name("a database name or *")?
                };
                let user;
                if w == "GRANT" {
                    self.kw("TO")?;
                    user = self.name("a user name")?;
                    S::Grant { perms, db, user }
                } else {
                    self.kw("FROM")?;
                    user = self.name("a user name")?;
                    S::Revoke { perms, db, user }
                }
            }
            "QUIT" | "EXIT" => S::Quit,
            _ => return Err(self.error_at(&first, "a statement")),
        };
        self.end()?;
        Ok(st)
    }

    fn perms(&mut self) -> PResult<Perms> {
        if self.eat_sym("*") {
            return Ok(Perms::ALL);
        }
        let mut p = Perms::default();
        loop {
            let t = self.peek().clone();
            if t.kind == Kind::Word && !self.is_kw("ON") {
                for c in self.text(&t).chars() {
                    let bit = Perms::LETTERS
                        .iter()
                        .find(|(l, _)| l.eq_ignore_ascii_case(&c))
                        .map(|(_, b)| *b)
                        .ok_or_else(|| self.error_at(&t, "rights from C, R, U, D, A or *"))?;
                    p = p.union(bit);
                }
                self.i += 1;
                self.eat_sym(",");
            } else if p.is_empty() {
                return Err(self.error_at(&t, "rights from C, R, U, D, A or *"));
            } else {
                return Ok(p);
            }
        }
    }

    // ---- expressions: precedence climbing, lowest first ----
    fn expr(&mut self) -> PResult<Expr> {
        self.binary(0)
    }

    fn binary(&mut self, level: usize) -> PResult<Expr> {
        const LEVELS: [&[(&str, BinOp)]; 6] = [
            &[("||", BinOp::Or)],
            &[("&&", BinOp::And)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
            &[
                ("<", BinOp::Lt),
                ("<=", BinOp::Le),
                (">", BinOp::Gt),
                (">=", BinOp::Ge),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        'outer: loop {
            for (sym, op) in LEVELS[level] {
                if self.eat_sym(sym) {
                    self.node()?;
                    let rhs = self.binary(level + 1)?;
                    lhs = Expr::Bin(*op, Box::new(lhs), Box::new(rhs));
                    continue 'outer;
                }
            }
            return Ok(lhs);
        }
    }

    /// Count one expression node against [`MAX_EXPR_NODES`].
    fn node(&mut self) -> PResult<()> {
        self.nodes += 1;
        if self.nodes > MAX_EXPR_NODES {
            return self.fail("a smaller expression (at most 1024 operators and operands)");
        }
        Ok(())
    }

    /// Enter one level of nesting (a parenthesis or a unary operator). A limit on
    /// everything: nesting is bounded so that no input can exhaust the stack.
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > 64 {
            return self.fail("a less deeply nested expression");
        }
        Ok(())
    }

    fn unary(&mut self) -> PResult<Expr> {
        self.node()?;
        if self.negative_number_ahead() {
            return Ok(Expr::Lit(self.literal()?));
        }
        for (sym, neg) in [("-", true), ("!", false)] {
            if self.eat_sym(sym) {
                self.enter()?;
                let e = Box::new(self.unary()?);
                self.depth -= 1;
                return Ok(if neg { Expr::Neg(e) } else { Expr::Not(e) });
            }
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        match &t.kind {
            Kind::Sym("(") => {
                self.i += 1;
                self.enter()?;
                let e = self.expr()?;
                self.depth -= 1;
                self.sym(")")?;
                Ok(e)
            }
            Kind::Word => {
                let w = self.text(&t);
                if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w)) {
                    return Ok(Expr::Lit(self.literal()?));
                }
                if self.peek2().kind == Kind::Sym("(") {
                    let func = Func::from_name(w)
                        .ok_or_else(|| self.error_at(&t, "a rolling function name"))?;
                    self.i += 2;
                    let lens = self.name("a lens name")?;
                    self.sym(",")?;
                    let rel_start = self.int("a window start offset")?;
                    self.sym(",")?;
                    let rel_end = self.int("a window end offset")?;
                    self.sym(")")?;
                    return Ok(Expr::Roll {
                        func,
                        lens,
                        rel_start,
                        rel_end,
                    });
                }
                self.i += 1;
                Ok(Expr::Lens(w.to_string()))
            }
            Kind::Int | Kind::Float | Kind::Str(_) | Kind::Bytes(_) => {
                Ok(Expr::Lit(self.literal()?))
            }
            _ => Err(self.error_at(&t, "an expression")),
        }
    }
}

fn sym_static(s: &str) -> &'static str {
    SYMBOLS
        .iter()
        .copied()
        .chain(std::iter::once("}"))
        .find(|x| *x == s)
        .expect("parser only asks for known symbols")
}

/// `AUTH user password`: the password is a bare word or a string literal, so it is
/// split off by hand rather than lexed (a bare password may hold any non-blank bytes).
fn parse_auth(line: &str) -> PResult<Statement> {
    let rest = line.trim_start_matches([' ', '\t']);
    let after_kw = rest[4..].trim_start_matches([' ', '\t']);
    let base = line.len() - after_kw.len();
    let user_len = after_kw.find([' ', '\t']).unwrap_or(after_kw.len());
    let user = &after_kw[..user_len];
    let err = |at: usize, m: String| ParseError {
        column: col(line, at),
        message: m,
    };
    let valid_name = |s: &str| {
        let mut c = s.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    if !valid_name(user) {
        let found = if user.is_empty() {
            "end of line".to_string()
        } else {
            format!("{user:?}")
        };
        return Err(err(base, format!("expected a user name, found {found}")));
    }
    let after_user = &after_kw[user_len..];
    let pw_text = after_user.trim_matches([' ', '\t']);
    let pw_at = line.len() - after_user.trim_start_matches([' ', '\t']).len();
    if pw_text.is_empty() {
        return Err(err(pw_at, "expected a password, found end of line".into()));
    }
    let password = if pw_text.starts_with('"') {
        let mut p = Parser {
            src: line,
            toks: lex(line)?,
            i: 0,
            depth: 0,
            nodes: 0,
        };
        // Skip AUTH and the user name: the password string is the third token.
        p.i = 2;
        let s = p.string("a password")?;
        p.end()?;
        s
    } else {
        if let Some(sp) = pw_text.find([' ', '\t']) {
            return Err(err(
                pw_at + sp,
                "expected end of line after the password".into(),
            ));
        }
        pw_text.to_string()
    };
    Ok(Statement::Auth {
        user: user.to_string(),
        password,
    })
}

/// Parse one statement line (without its line terminator).
pub fn parse(line: &str) -> Result<Statement, ParseError> {
    let trimmed = line.trim_start_matches([' ', '\t']);
    if trimmed.len() >= 4
        && trimmed.as_bytes()[..4].eq_ignore_ascii_case(b"AUTH")
        && trimmed[4..].starts_with([' ', '\t'])
    {
        return parse_auth(line);
    }
    let mut p = Parser {
        src: line,
        toks: lex(line)?,
        i: 0,
        depth: 0,
        nodes: 0,
    };
    p.statement()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> String {
        parse(line).unwrap_err().to_string()
    }

    #[test]
    fn spec_error_example() {
        assert_eq!(
            err("REDUCE LENS temp 0 7200 USNG twavg"),
            "parse error at column 24: expected USING, found \"USNG\""
        );
    }

    #[test]
    fn literals_and_negatives() {
        let s = parse("APPEND LENS x -5 -1 -2.5, 0 1 0xff, 1 2 \"a\\\"b\", 2 3 NULL").unwrap();
        let Statement::Append { rows, .. } = s else {
            panic!("not an append")
        };
        assert_eq!(rows[0].start, -5);
        assert_eq!(rows[0].value, Value::Float(-2.5));
        assert_eq!(rows[1].value, Value::bytes(&[255]));
        assert_eq!(rows[2].value, Value::str("a\"b"));
        assert_eq!(rows[3].value, Value::Null);
        assert!(parse("AT LENS x -9223372036854775808").is_ok());
        assert!(err("AT LENS x 9223372036854775808").contains("integer out of range"));
        assert!(err("APPEND LENS x 0 1 1e400").contains("float out of range"));
    }

    #[test]
    fn expressions_bind_by_precedence() {
        let Statement::Derive { expr, .. } =
            parse("DERIVE LENS f AS temp * 9.0 / 5.0 + 32.0").unwrap()
        else {
            panic!()
        };
        // ((temp * 9.0) / 5.0) + 32.0
        let Expr::Bin(BinOp::Add, lhs, _) = &expr else {
            panic!("{expr:?}")
        };
        let Expr::Bin(BinOp::Div, inner, _) = &**lhs else {
            panic!("{lhs:?}")
        };
        assert!(matches!(&**inner, Expr::Bin(BinOp::Mul, ..)), "{inner:?}");
        assert_eq!(expr.to_string(), "temp * 9.0 / 5.0 + 32.0");
        let Statement::Derive { expr, .. } = parse("DERIVE LENS f AS a -5 < -b || !c").unwrap()
        else {
            panic!()
        };
        assert_eq!(expr.to_string(), "a - 5 < - b || ! c");
        // Parentheses are printed exactly where the tree needs them.
        for (input, printed) in [
            ("a - (b - c)", "a - (b - c)"),
            ("(a - b) - c", "a - b - c"),
            ("(a + b) * c", "(a + b) * c"),
            ("a * (b + c) % 2", "a * (b + c) % 2"),
            ("-(a + b)", "- (a + b)"),
            ("- -5", "- -5"),
            ("x - -5", "x - -5"),
            ("!(a && b) || c", "! (a && b) || c"),
        ] {
            let Statement::Derive { expr, .. } =
                parse(&format!("DERIVE LENS f AS {input}")).unwrap()
            else {
                panic!()
            };
            assert_eq!(expr.to_string(), printed, "{input}");
            let back = parse(&format!("DERIVE LENS f AS {printed}")).unwrap();
            assert!(
                matches!(back, Statement::Derive { expr: ref e, .. } if *e == expr),
                "{input}"
            );
        }
    }

    #[test]
    fn auth_forms() {
        assert_eq!(
            parse("AUTH bob p@ss:w0rd").unwrap(),
            Statement::Auth {
                user: "bob".into(),
                password: "p@ss:w0rd".into()
            }
        );
        assert_eq!(
            parse("auth bob \"with space\"").unwrap(),
            Statement::Auth {
                user: "bob".into(),
                password: "with space".into()
            }
        );
        assert!(parse("AUTH bob").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!(
            "DERIVE LENS d AS {}x{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(parse(&deep).is_err());
        let neg = format!("DERIVE LENS d AS {}x", "- ".repeat(10_000));
        assert!(parse(&neg).is_err());
    }
}
