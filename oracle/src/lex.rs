//! Tokenizer for one TauQL line. Works on `char`s so that columns are character offsets.

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// Identifiers and keywords (keywords are matched case-insensitively by the parser).
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Sym(&'static str),
}

#[derive(Clone, Debug)]
pub struct Token {
    pub tok: Tok,
    pub col: usize,
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct ParseError {
    pub col: usize,
    pub msg: String,
}

/// Two-character symbols first so that they win over their one-character prefixes.
const SYMS: [&str; 20] = [
    "||", "&&", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "!", "(", ")", "{", "}",
    ",", ";",
];

pub fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

pub fn lex(chars: &[char]) -> Result<Vec<Token>, ParseError> {
    let n = chars.len();
    let mut i = 0;
    let mut out = Vec::new();
    while i < n {
        let c = chars[i];
        if c == ' ' || c == '\t' {
            i += 1;
            continue;
        }
        let start = i;
        let tok = if is_ident_start(c) {
            while i < n && is_ident_char(chars[i]) {
                i += 1;
            }
            Tok::Ident(chars[start..i].iter().collect())
        } else if c.is_ascii_digit() || (c == '-' && i + 1 < n && chars[i + 1].is_ascii_digit()) {
            let (tok, end) = lex_number(chars, i)?;
            i = end;
            tok
        } else if c == '"' {
            let (s, end) = lex_string(chars, i)?;
            i = end;
            Tok::Str(s)
        } else {
            let mut found = None;
            for s in SYMS {
                let len = s.chars().count();
                if i + len <= n && chars[i..i + len].iter().copied().eq(s.chars()) {
                    found = Some(s);
                    i += len;
                    break;
                }
            }
            match found {
                Some(s) => Tok::Sym(s),
                None => {
                    return Err(ParseError {
                        col: i,
                        msg: format!("unexpected character {:?}", c),
                    })
                }
            }
        };
        out.push(Token {
            tok,
            col: start,
            text: chars[start..i].iter().collect(),
        });
    }
    Ok(out)
}

/// Number or bytes literal starting at `i`. Returns the token and the index after it.
fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize), ParseError> {
    let n = chars.len();
    let mut i = start;
    let bad = |col: usize, msg: &str| ParseError {
        col,
        msg: msg.to_string(),
    };
    if chars[i] == '0' && i + 1 < n && chars[i + 1] == 'x' {
        i += 2;
        let hex_start = i;
        while i < n && chars[i].is_ascii_hexdigit() {
            i += 1;
        }
        if i < n && (is_ident_char(chars[i]) || chars[i] == '.') {
            return Err(bad(start, "invalid bytes literal"));
        }
        let digits: Vec<u8> = chars[hex_start..i]
            .iter()
            .map(|c| c.to_digit(16).unwrap() as u8)
            .collect();
        if digits.len() & 1 == 1 {
            return Err(bad(
                start,
                "bytes literal needs an even number of hex digits",
            ));
        }
        let bytes = digits.chunks(2).map(|p| p[0] * 16 + p[1]).collect();
        return Ok((Tok::Bytes(bytes), i));
    }
    if chars[i] == '-' {
        i += 1;
    }
    while i < n && chars[i].is_ascii_digit() {
        i += 1;
    }
    let mut is_float = false;
    if i + 1 < n && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
        i += 1;
        while i < n && chars[i].is_ascii_digit() {
            i += 1;
        }
        is_float = true;
    }
    if i < n && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        if j < n && (chars[j] == '+' || chars[j] == '-') {
            j += 1;
        }
        if j < n && chars[j].is_ascii_digit() {
            while j < n && chars[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
            is_float = true;
        }
    }
    if i < n && (is_ident_char(chars[i]) || chars[i] == '.') {
        return Err(bad(start, "invalid number"));
    }
    let text: String = chars[start..i].iter().collect();
    if is_float {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok((Tok::Float(f), i)),
            _ => Err(bad(start, "float out of range")),
        }
    } else {
        match text.parse::<i64>() {
            Ok(v) => Ok((Tok::Int(v), i)),
            Err(_) => Err(bad(start, "integer out of range")),
        }
    }
}

/// String literal starting at the opening quote `start`. Only `\"` and `\\` are escapes.
pub fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), ParseError> {
    let mut i = start + 1;
    let mut s = String::new();
    loop {
        if i >= chars.len() {
            return Err(ParseError {
                col: start,
                msg: "unterminated string".to_string(),
            });
        }
        match chars[i] {
            '"' => return Ok((s, i + 1)),
            '\\' => match chars.get(i + 1) {
                Some('"') => {
                    s.push('"');
                    i += 2;
                }
                Some('\\') => {
                    s.push('\\');
                    i += 2;
                }
                _ => {
                    return Err(ParseError {
                        col: i,
                        msg: "invalid escape in string".to_string(),
                    })
                }
            },
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
}
