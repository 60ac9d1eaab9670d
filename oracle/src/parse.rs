//! Parser: one line -> one statement.

use crate::lex::{is_ident_char, is_ident_start, lex, lex_string, ParseError, Tok, Token};
use crate::value::{Ty, Value};

/// The REDUCE functions (also the rolling aggregates in expressions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    pub fn from_name(s: &str) -> Option<Func> {
        Some(match s.to_ascii_lowercase().as_str() {
            "min" => Func::Min,
            "max" => Func::Max,
            "sum" => Func::Sum,
            "count" => Func::Count,
            "avg" => Func::Avg,
            "twavg" => Func::Twavg,
            "integral" => Func::Integral,
            "duration" => Func::Duration,
            "first" => Func::First,
            "last" => Func::Last,
            _ => return None,
        })
    }

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

    /// Functions that need an int or float input.
    pub fn needs_number(self) -> bool {
        matches!(
            self,
            Func::Min | Func::Max | Func::Sum | Func::Avg | Func::Twavg | Func::Integral
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
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
    Mod,
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
            BinOp::Mod => "%",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Lit(Value),
    Ref(String),
    /// Rolling aggregate `f(lens, a, b)`; the bounds are int literals in the syntax
    /// (`a < b` is checked by the type checker).
    Call(Func, String, i64, i64),
    Un(UnOp, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Every lens name the expression mentions, in textual order (with repeats).
    pub fn refs(&self, out: &mut Vec<String>) {
        match self {
            Expr::Lit(_) => {}
            Expr::Ref(n) => out.push(n.clone()),
            Expr::Call(_, n, _, _) => out.push(n.clone()),
            Expr::Un(_, x) => x.refs(out),
            Expr::Bin(_, a, b) => {
                a.refs(out);
                b.refs(out);
            }
        }
    }
}

/// `AS OF` / `LAYER` selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sel {
    All,
    AsOf(i64),
    Layer(i64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    CreateDb(String),
    DropDb(String),
    UseDb(String),
    ShowDbs,
    CreateLens(String, Ty),
    DropLens(String),
    ShowLenses,
    Derive(String, Expr),
    /// APPEND and BATCH APPEND.
    Append {
        lens: String,
        tuples: Vec<(i64, i64, Value)>,
    },
    Copy {
        lens: String,
        path: String,
    },
    At {
        lens: String,
        t: i64,
        sel: Sel,
    },
    Range {
        lens: String,
        s: i64,
        e: i64,
        sel: Sel,
        filter: Option<Expr>,
        limit: Option<u64>,
        offset: Option<u64>,
    },
    Reduce {
        lens: String,
        s: i64,
        e: i64,
        sel: Sel,
        f: Func,
    },
    History {
        lens: String,
        range: Option<(i64, i64)>,
    },
    Compact(String),
    Start,
    Commit,
    Rollback,
    CreateUser(String, String),
    DropUser(String),
    ShowUsers,
    Grant {
        perms: u8,
        db: String,
        user: String,
    },
    Revoke {
        perms: u8,
        db: String,
        user: String,
    },
    ShowGrants(Option<String>),
    ShowStatus,
    Auth(String, String),
    Quit,
}

pub const PERM_LETTERS: [char; 5] = ['C', 'R', 'U', 'D', 'A'];
pub const PERM_ALL: u8 = 0b11111;

pub fn perm_bit(c: char) -> Option<u8> {
    PERM_LETTERS
        .iter()
        .position(|p| *p == c.to_ascii_uppercase())
        .map(|i| 1u8 << i)
}

struct P {
    toks: Vec<Token>,
    pos: usize,
    eol: usize,
}

type PResult<T> = Result<T, ParseError>;

fn is_reserved(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l == "true" || l == "false" || l == "null"
}

impl P {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek2(&self) -> Option<&Token> {
        self.toks.get(self.pos + 1)
    }

    fn err<T>(&self, expected: &str) -> PResult<T> {
        let (col, found) = match self.peek() {
            Some(t) => (t.col, format!("\"{}\"", t.text)),
            None => (self.eol, "end of line".to_string()),
        };
        Err(ParseError {
            col,
            msg: format!("expected {}, found {}", expected, found),
        })
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(s), .. }) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.err(kw)
        }
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Sym(x), .. }) if *x == s)
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, s: &str) -> PResult<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            self.err(&format!("\"{}\"", s))
        }
    }

    fn name(&mut self, what: &str) -> PResult<String> {
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) if !is_reserved(&s) => {
                self.pos += 1;
                Ok(s)
            }
            _ => self.err(what),
        }
    }

    fn int(&mut self, what: &str) -> PResult<i64> {
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Int(v), ..
            }) => {
                self.pos += 1;
                Ok(v)
            }
            _ => self.err(what),
        }
    }

    fn count(&mut self) -> PResult<u64> {
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Int(v), ..
            }) if v >= 0 => {
                self.pos += 1;
                Ok(v as u64)
            }
            _ => self.err("a non-negative integer"),
        }
    }

    fn string(&mut self, what: &str) -> PResult<String> {
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => {
                self.pos += 1;
                Ok(s)
            }
            _ => self.err(what),
        }
    }

    /// A literal value, if the next token is one.
    fn try_lit(&mut self) -> Option<Value> {
        let v = match &self.peek()?.tok {
            Tok::Int(i) => Value::Int(*i),
            Tok::Float(f) => Value::Float(*f),
            Tok::Str(s) => Value::Str(s.clone()),
            Tok::Bytes(b) => Value::Bytes(b.clone()),
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => return None,
            },
            Tok::Sym(_) => return None,
        };
        self.pos += 1;
        Some(v)
    }

    fn lit(&mut self) -> PResult<Value> {
        match self.try_lit() {
            Some(v) => Ok(v),
            None => self.err("a value"),
        }
    }

    fn end(&mut self) -> PResult<()> {
        if self.peek().is_none() {
            Ok(())
        } else {
            self.err("end of line")
        }
    }

    fn lens_kw_name(&mut self) -> PResult<String> {
        self.expect_kw("LENS")?;
        self.name("a lens name")
    }

    fn tuple(&mut self) -> PResult<(i64, i64, Value)> {
        let s = self.int("an integer start")?;
        let e = self.int("an integer end")?;
        let v = self.lit()?;
        Ok((s, e, v))
    }

    fn sel(&mut self) -> PResult<Sel> {
        if self.eat_kw("AS") {
            self.expect_kw("OF")?;
            // SPEC v0.2: an RFC 3339 string literal names the same millisecond.
            if let Some(Token {
                tok: Tok::Str(text),
                ..
            }) = self.peek().cloned()
            {
                return match crate::clock::rfc3339_ms(&text) {
                    Some(ms) => {
                        self.pos += 1;
                        Ok(Sel::AsOf(ms))
                    }
                    None => self.err("an RFC 3339 timestamp"),
                };
            }
            Ok(Sel::AsOf(self.int("an integer")?))
        } else if self.eat_kw("LAYER") {
            Ok(Sel::Layer(self.int("an integer")?))
        } else {
            Ok(Sel::All)
        }
    }

    fn perms(&mut self) -> PResult<u8> {
        if self.eat_sym("*") {
            return Ok(PERM_ALL);
        }
        let mut bits = 0u8;
        let mut any = false;
        while let Some(Token {
            tok: Tok::Ident(s), ..
        }) = self.peek()
        {
            let word: Option<Vec<u8>> = s.chars().map(perm_bit).collect();
            match word {
                Some(ws) => {
                    for b in ws {
                        bits |= b;
                    }
                    any = true;
                    self.pos += 1;
                }
                None => break,
            }
        }
        if !any {
            return self.err("permissions");
        }
        Ok(bits)
    }

    fn target_db(&mut self) -> PResult<String> {
        if self.eat_sym("*") {
            Ok("*".to_string())
        } else {
            self.name("a database name or \"*\"")
        }
    }

    // ---- expressions ----

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
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        'outer: loop {
            self.split_minus()?;
            for (sym, op) in LEVELS[level] {
                if self.eat_sym(sym) {
                    let right = self.binary(level + 1)?;
                    left = Expr::Bin(*op, Box::new(left), Box::new(right));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    /// Operator position (after a complete operand): a number token that the lexer read with
    /// a leading `-` is really the binary minus followed by an unsigned literal.
    fn split_minus(&mut self) -> PResult<()> {
        let Some(t) = self.toks.get(self.pos) else {
            return Ok(());
        };
        if !t.text.starts_with('-') {
            return Ok(());
        }
        let col = t.col + 1;
        let text = t.text[1..].to_string();
        let tok = match &t.tok {
            Tok::Int(_) => match text.parse::<i64>() {
                Ok(v) => Tok::Int(v),
                Err(_) => {
                    return Err(ParseError {
                        col,
                        msg: "integer out of range".to_string(),
                    })
                }
            },
            Tok::Float(f) => Tok::Float(-*f),
            _ => return Ok(()),
        };
        let minus = Token {
            tok: Tok::Sym("-"),
            col: t.col,
            text: "-".to_string(),
        };
        self.toks[self.pos] = Token { tok, col, text };
        self.toks.insert(self.pos, minus);
        Ok(())
    }

    fn unary(&mut self) -> PResult<Expr> {
        if self.eat_sym("-") {
            return Ok(Expr::Un(UnOp::Neg, Box::new(self.unary()?)));
        }
        if self.eat_sym("!") {
            return Ok(Expr::Un(UnOp::Not, Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<Expr> {
        if let Some(v) = self.try_lit() {
            return Ok(Expr::Lit(v));
        }
        if self.eat_sym("(") {
            let e = self.expr()?;
            self.expect_sym(")")?;
            return Ok(e);
        }
        if let Some(Token {
            tok: Tok::Ident(s), ..
        }) = self.peek().cloned()
        {
            let is_call = matches!(
                self.peek2(),
                Some(Token {
                    tok: Tok::Sym("("),
                    ..
                })
            );
            if is_call {
                if let Some(f) = Func::from_name(&s) {
                    self.pos += 2;
                    let lens = self.name("a lens name")?;
                    self.expect_sym(",")?;
                    let a = self.int("an integer window start")?;
                    self.expect_sym(",")?;
                    let b = self.int("an integer window end")?;
                    self.expect_sym(")")?;
                    return Ok(Expr::Call(f, lens, a, b));
                }
            }
            self.pos += 1;
            return Ok(Expr::Ref(s));
        }
        self.err("an expression")
    }

    // ---- statements ----

    fn statement(&mut self) -> PResult<Stmt> {
        let first = match self.peek() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) => s.to_ascii_uppercase(),
            _ => return self.err("a statement"),
        };
        self.pos += 1;
        let st = match first.as_str() {
            "CREATE" => {
                if self.eat_kw("DATABASE") {
                    Stmt::CreateDb(self.name("a database name")?)
                } else if self.eat_kw("LENS") {
                    let n = self.name("a lens name")?;
                    let ty = match self.peek() {
                        Some(Token {
                            tok: Tok::Ident(s), ..
                        }) => Ty::from_keyword(s),
                        _ => None,
                    };
                    match ty {
                        Some(ty) => {
                            self.pos += 1;
                            Stmt::CreateLens(n, ty)
                        }
                        None => return self.err("a type (int, float, str, bool, bytes)"),
                    }
                } else if self.eat_kw("USER") {
                    let u = self.name("a user name")?;
                    self.expect_kw("PASSWORD")?;
                    let p = self.string("a string password")?;
                    Stmt::CreateUser(u, p)
                } else {
                    return self.err("DATABASE, LENS or USER");
                }
            }
            "DROP" => {
                if self.eat_kw("DATABASE") {
                    Stmt::DropDb(self.name("a database name")?)
                } else if self.eat_kw("LENS") {
                    Stmt::DropLens(self.name("a lens name")?)
                } else if self.eat_kw("USER") {
                    Stmt::DropUser(self.name("a user name")?)
                } else {
                    return self.err("DATABASE, LENS or USER");
                }
            }
            "USE" => {
                self.expect_kw("DATABASE")?;
                Stmt::UseDb(self.name("a database name")?)
            }
            "SHOW" => {
                if self.eat_kw("DATABASES") {
                    Stmt::ShowDbs
                } else if self.eat_kw("LENSES") {
                    Stmt::ShowLenses
                } else if self.eat_kw("USERS") {
                    Stmt::ShowUsers
                } else if self.eat_kw("GRANTS") {
                    if self.peek().is_some() {
                        Stmt::ShowGrants(Some(self.name("a user name")?))
                    } else {
                        Stmt::ShowGrants(None)
                    }
                } else if self.eat_kw("STATUS") {
                    Stmt::ShowStatus
                } else {
                    return self.err("DATABASES, LENSES, USERS, GRANTS or STATUS");
                }
            }
            "DERIVE" => {
                let n = self.lens_kw_name()?;
                self.expect_kw("AS")?;
                Stmt::Derive(n, self.expr()?)
            }
            "APPEND" => {
                let lens = self.lens_kw_name()?;
                let mut tuples = vec![self.tuple()?];
                while self.eat_sym(",") {
                    tuples.push(self.tuple()?);
                }
                Stmt::Append { lens, tuples }
            }
            "BATCH" => {
                self.expect_kw("APPEND")?;
                let lens = self.lens_kw_name()?;
                self.expect_sym("{")?;
                let mut tuples = Vec::new();
                if !self.eat_sym("}") {
                    tuples.push(self.tuple()?);
                    while self.eat_sym(";") {
                        tuples.push(self.tuple()?);
                    }
                    self.expect_sym("}")?;
                }
                Stmt::Append { lens, tuples }
            }
            "COPY" => {
                let lens = self.lens_kw_name()?;
                self.expect_kw("FROM")?;
                let path = self.string("a file name string")?;
                Stmt::Copy { lens, path }
            }
            "AT" => {
                let lens = self.lens_kw_name()?;
                let t = self.int("an integer time")?;
                let sel = self.sel()?;
                Stmt::At { lens, t, sel }
            }
            "RANGE" => {
                let lens = self.lens_kw_name()?;
                let s = self.int("an integer start")?;
                let e = self.int("an integer end")?;
                let sel = self.sel()?;
                let filter = if self.eat_kw("WHERE") {
                    Some(self.expr()?)
                } else {
                    None
                };
                let limit = if self.eat_kw("LIMIT") {
                    Some(self.count()?)
                } else {
                    None
                };
                let offset = if self.eat_kw("OFFSET") {
                    Some(self.count()?)
                } else {
                    None
                };
                Stmt::Range {
                    lens,
                    s,
                    e,
                    sel,
                    filter,
                    limit,
                    offset,
                }
            }
            "REDUCE" => {
                let lens = self.lens_kw_name()?;
                let s = self.int("an integer start")?;
                let e = self.int("an integer end")?;
                let sel = self.sel()?;
                self.expect_kw("USING")?;
                let f = match self.peek() {
                    Some(Token {
                        tok: Tok::Ident(s), ..
                    }) => Func::from_name(s),
                    _ => None,
                };
                match f {
                    Some(f) => {
                        self.pos += 1;
                        Stmt::Reduce { lens, s, e, sel, f }
                    }
                    None => return self.err("a reduce function"),
                }
            }
            "HISTORY" => {
                let lens = self.lens_kw_name()?;
                let range = if self.peek().is_some() {
                    let s = self.int("an integer start")?;
                    let e = self.int("an integer end")?;
                    Some((s, e))
                } else {
                    None
                };
                Stmt::History { lens, range }
            }
            "COMPACT" => Stmt::Compact(self.lens_kw_name()?),
            "START" => {
                self.expect_kw("TRANSACTION")?;
                Stmt::Start
            }
            "COMMIT" => Stmt::Commit,
            "ROLLBACK" => Stmt::Rollback,
            "GRANT" => {
                let perms = self.perms()?;
                self.expect_kw("ON")?;
                let db = self.target_db()?;
                self.expect_kw("TO")?;
                let user = self.name("a user name")?;
                Stmt::Grant { perms, db, user }
            }
            "REVOKE" => {
                let perms = self.perms()?;
                self.expect_kw("ON")?;
                let db = self.target_db()?;
                self.expect_kw("FROM")?;
                let user = self.name("a user name")?;
                Stmt::Revoke { perms, db, user }
            }
            "QUIT" | "EXIT" => Stmt::Quit,
            _ => {
                self.pos -= 1;
                return self.err("a statement");
            }
        };
        self.end()?;
        Ok(st)
    }
}

/// `AUTH <user> <password>`: the password is a bare word (any non-blank characters) or a
/// string literal. Handled before tokenizing because a bare password may hold any character.
fn parse_auth(chars: &[char], start: usize) -> PResult<Stmt> {
    let n = chars.len();
    let blank = |c: char| c == ' ' || c == '\t';
    let err = |col: usize, msg: &str| ParseError {
        col,
        msg: msg.to_string(),
    };
    let mut i = start + 4;
    while i < n && blank(chars[i]) {
        i += 1;
    }
    let ustart = i;
    if i >= n || !is_ident_start(chars[i]) {
        return Err(err(i, "expected a user name"));
    }
    while i < n && is_ident_char(chars[i]) {
        i += 1;
    }
    let user: String = chars[ustart..i].iter().collect();
    if is_reserved(&user) || (i < n && !blank(chars[i])) {
        return Err(err(ustart, "expected a user name"));
    }
    while i < n && blank(chars[i]) {
        i += 1;
    }
    if i >= n {
        return Err(err(i, "expected a password, found end of line"));
    }
    let password = if chars[i] == '"' {
        let (s, end) = lex_string(chars, i)?;
        i = end;
        s
    } else {
        let pstart = i;
        while i < n && !blank(chars[i]) {
            i += 1;
        }
        chars[pstart..i].iter().collect()
    };
    while i < n && blank(chars[i]) {
        i += 1;
    }
    if i < n {
        return Err(err(i, "expected end of line"));
    }
    Ok(Stmt::Auth(user, password))
}

/// Parse one non-blank line (already valid UTF-8, trailing `\r` removed).
pub fn parse_line(line: &str) -> Result<Stmt, ParseError> {
    let chars: Vec<char> = line.chars().collect();
    let mut start = 0;
    while start < chars.len() && (chars[start] == ' ' || chars[start] == '\t') {
        start += 1;
    }
    let mut word_end = start;
    while word_end < chars.len() && is_ident_char(chars[word_end]) {
        word_end += 1;
    }
    let word: String = chars[start..word_end].iter().collect();
    if word.eq_ignore_ascii_case("AUTH")
        && (word_end == chars.len() || chars[word_end] == ' ' || chars[word_end] == '\t')
    {
        return parse_auth(&chars, start);
    }
    let toks = lex(&chars)?;
    let mut eol = chars.len();
    while eol > 0 && (chars[eol - 1] == ' ' || chars[eol - 1] == '\t') {
        eol -= 1;
    }
    let mut p = P { toks, pos: 0, eol };
    p.statement()
}
