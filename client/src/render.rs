//! Showing replies: RANGE, HISTORY (`LAYERS`) and the SHOW replies (`NAMES`, `GRANTS`,
//! `STATUS`) as aligned tables; every other reply, and any line whose shape is not
//! exactly SPEC's, as it came.

use crate::wire::{parse_reply, Reply};
use unicode_width::UnicodeWidthStr;

/// A table: a header, rows of cells, and per column whether it is right-aligned.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub right: Vec<bool>,
}

impl Table {
    /// Render in the style of psql:
    ///
    /// ```text
    ///  start | end  | value
    /// -------+------+-------
    ///      0 | 3600 | 18.5
    /// (1 row)
    /// ```
    ///
    /// Every line but the footer has the same display width. No trailing newline.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width: Vec<usize> = self.header.iter().map(|h| h.width()).collect();
        for r in &self.rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.width());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String], align: &dyn Fn(usize) -> bool| {
            for (i, w) in width.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = " ".repeat(w - c.width().min(*w));
                out.push(if i == 0 { ' ' } else { '|' });
                if i > 0 {
                    out.push(' ');
                }
                if align(i) {
                    out.push_str(&pad);
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    out.push_str(&pad);
                }
                out.push(' ');
            }
            out.push('\n');
        };
        // Headers are centred-left like psql's: simply left-aligned here.
        line(&mut out, &self.header, &|_| false);
        for (i, w) in width.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            out.push_str(&"-".repeat(w + 2));
        }
        out.push('\n');
        for r in &self.rows {
            line(&mut out, r, &|i| {
                self.right.get(i).copied().unwrap_or(false)
            });
        }
        let n = self.rows.len();
        out.push_str(&format!("({n} row{})", if n == 1 { "" } else { "s" }));
        debug_assert_eq!(cols, width.len());
        out
    }
}

/// What a `NAMES` reply lists, from the statement that asked (`SHOW DATABASES` ...).
fn names_header(statement: &str) -> &'static str {
    let mut w = statement.split_whitespace().map(str::to_ascii_uppercase);
    match (w.next().as_deref(), w.next().as_deref()) {
        (Some("SHOW"), Some("DATABASES")) => "database",
        (Some("SHOW"), Some("LENSES")) => "lens",
        (Some("SHOW"), Some("USERS")) => "user",
        _ => "name",
    }
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

/// The table for a reply, if it is one shown as a table.
pub fn table(statement: &str, reply: &Reply) -> Option<Table> {
    Some(match reply {
        Reply::Range(pieces) => {
            let all_numbers = pieces.iter().all(|p| p.2.is_number());
            Table {
                header: vec![s("start"), s("end"), s("value")],
                rows: pieces
                    .iter()
                    .map(|(a, b, v)| vec![s(a), s(b), v.display()])
                    .collect(),
                right: vec![true, true, all_numbers && !pieces.is_empty()],
            }
        }
        Reply::Layers(layers) => Table {
            header: vec![s("layer"), s("written_at"), s("min_start"), s("max_end")],
            rows: layers
                .iter()
                .map(|l| vec![s(l.id), s(l.written_at), s(l.min_start), s(l.max_end)])
                .collect(),
            right: vec![true; 4],
        },
        Reply::Names(names) => Table {
            header: vec![s(names_header(statement))],
            rows: names.iter().map(|n| vec![n.clone()]).collect(),
            right: vec![false],
        },
        Reply::Grants(users) => {
            let mut rows = Vec::new();
            for (user, grants) in users {
                if grants.is_empty() {
                    rows.push(vec![user.clone(), String::new(), String::new()]);
                }
                for (db, perms) in grants {
                    rows.push(vec![user.clone(), db.clone(), perms.clone()]);
                }
            }
            Table {
                header: vec![s("user"), s("database"), s("perms")],
                rows,
                right: vec![false; 3],
            }
        }
        Reply::Status(kv) => Table {
            header: vec![s("key"), s("value")],
            rows: kv
                .iter()
                .map(|(k, v)| {
                    vec![
                        crate::wire::escape_controls(k),
                        crate::wire::escape_controls(v),
                    ]
                })
                .collect(),
            right: vec![false, false],
        },
        _ => return None,
    })
}

/// How one reply line is shown: a table where SPEC's shape allows, otherwise the line as
/// it came; with `raw`, always the line as it came. No trailing newline.
pub fn render(statement: &str, line: &str, raw: bool) -> String {
    if raw {
        return line.to_string();
    }
    match table(statement, &parse_reply(line)) {
        Some(t) => t.render(),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_table() {
        let t = render(
            "RANGE LENS temp 0 7200",
            "RANGE 2; 0:3600:f18.5; 3600:7200:f21",
            false,
        );
        assert_eq!(
            t,
            " start | end  | value \n\
             -------+------+-------\n\
             \x20    0 | 3600 |  18.5 \n\
             \x20 3600 | 7200 |    21 \n\
             (2 rows)"
        );
    }

    #[test]
    fn string_values_left_aligned_and_decoded() {
        let t = render(
            "RANGE LENS s 0 10",
            "RANGE 2; 0:5:sa%20b; 5:10:sxyzzy%3B",
            false,
        );
        assert_eq!(
            t,
            " start | end | value  \n\
             -------+-----+--------\n\
             \x20    0 |   5 | a b    \n\
             \x20    5 |  10 | xyzzy; \n\
             (2 rows)"
        );
    }

    #[test]
    fn empty_range() {
        assert_eq!(
            render("RANGE LENS x 0 1", "RANGE 0", false),
            " start | end | value \n-------+-----+-------\n(0 rows)"
        );
    }

    #[test]
    fn history_table() {
        let t = render(
            "HISTORY LENS temp",
            "LAYERS 2; 1:10:0:7200; 2:20:0:3600",
            false,
        );
        assert_eq!(
            t,
            " layer | written_at | min_start | max_end \n\
             -------+------------+-----------+---------\n\
             \x20    1 |         10 |         0 |    7200 \n\
             \x20    2 |         20 |         0 |    3600 \n\
             (2 rows)"
        );
    }

    #[test]
    fn show_tables() {
        assert_eq!(
            render("show lenses", "NAMES 1; temp", false),
            " lens \n------\n temp \n(1 row)"
        );
        assert_eq!(
            render("SHOW DATABASES", "NAMES 0", false),
            " database \n----------\n(0 rows)"
        );
        assert_eq!(
            render("SHOW GRANTS", "GRANTS 2; admin *:CRUDA db:R; bob", false),
            " user  | database | perms \n\
             -------+----------+-------\n\
             \x20admin | *        | CRUDA \n\
             \x20admin | db       | R     \n\
             \x20bob   |          |       \n\
             (3 rows)"
        );
        assert_eq!(
            render("SHOW STATUS", "STATUS 2; auth:off; version:0.1.0", false),
            " key     | value \n\
             ---------+-------\n\
             \x20auth    | off   \n\
             \x20version | 0.1.0 \n\
             (2 rows)"
        );
    }

    #[test]
    fn others_as_they_came() {
        for l in [
            "OK",
            "OK BYE",
            "VAL f18.5",
            "VAL NIL",
            "ERR unknown lens: x",
            "RANGE 3; 0:1:i1",
            "\u{0}garbage",
        ] {
            assert_eq!(render("RANGE LENS x 0 1", l, false), l);
        }
        assert_eq!(
            render("RANGE LENS x 0 1", "RANGE 1; 0:1:i1", true),
            "RANGE 1; 0:1:i1"
        );
    }

    #[test]
    fn wide_characters_align() {
        let t = render("RANGE LENS s 0 2", "RANGE 2; 0:1:s日本; 1:2:sab", false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[2].width(), lines[3].width());
        assert_eq!(lines[0].width(), lines[2].width());
    }
}
