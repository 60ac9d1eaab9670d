//! End-to-end: the real `tau` binary against a real engine over a real socket.

mod common;

use common::{auth_config, scratch, start, stderr, stdout, tau};
use tau_engine::Config;

const SETUP: [&str; 3] = [
    "CREATE DATABASE sensors",
    "USE DATABASE sensors",
    "CREATE LENS temp float",
];

fn with_setup<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = Vec::new();
    for s in SETUP.iter().chain(rest) {
        args.push("-c");
        args.push(s);
    }
    args
}

#[test]
fn dash_c_renders_tables() {
    let srv = start(Config::default());
    let args = with_setup(&[
        "APPEND LENS temp 0 3600 18.5, 3600 7200 21.0",
        "RANGE LENS temp 0 7200",
        "HISTORY LENS temp",
        "SHOW LENSES",
        "AT LENS temp 1800",
    ]);
    let o = tau(srv.addr, &args, "", &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "OK\nOK\nOK\nOK\n\
         \x20start | end  | value \n\
         -------+------+-------\n\
         \x20    0 | 3600 |  18.5 \n\
         \x20 3600 | 7200 |    21 \n\
         (2 rows)\n\
         \x20layer | written_at | min_start | max_end \n\
         -------+------------+-----------+---------\n\
         \x20    1 |          0 |         0 |    7200 \n\
         (1 row)\n\
         \x20lens \n\
         ------\n\
         \x20temp \n\
         (1 row)\n\
         VAL f18.5\n"
    );
}

#[test]
fn raw_prints_the_wire_form() {
    let srv = start(Config::default());
    let mut args = vec!["--raw"];
    args.extend(with_setup(&[
        "APPEND LENS temp 0 3600 18.5, 3600 7200 21.0",
        "RANGE LENS temp 0 7200",
        "SHOW LENSES",
    ]));
    let o = tau(srv.addr, &args, "", &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "OK\nOK\nOK\nOK\nRANGE 2; 0:3600:f18.5; 3600:7200:f21\nNAMES 1; temp\n"
    );
}

#[test]
fn strings_are_decoded_in_tables() {
    let srv = start(Config::default());
    let args = with_setup(&[
        "CREATE LENS note str",
        r#"APPEND LENS note 0 10 "a b:c;d%e", 10 20 "x\"y""#,
        "RANGE LENS note 0 20",
    ]);
    let o = tau(srv.addr, &args, "", &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(
        stdout(&o).ends_with(
            " start | end | value     \n\
             -------+-----+-----------\n\
             \x20    0 |  10 | a b:c;d%e \n\
             \x20   10 |  20 | x\"y       \n\
             (2 rows)\n"
        ),
        "{}",
        stdout(&o)
    );
}

/// SPEC's worked examples, `statement<TAB>reply` (spec/worked_examples.tsv).
fn worked_examples() -> Vec<(&'static str, &'static str)> {
    include_str!("../../spec/worked_examples.tsv")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('\t').expect("statement<TAB>reply"))
        .collect()
}

/// SPEC's worked examples, as a script file: every reply in order, and exit code 1
/// because two of them are errors.
#[test]
fn file_script_worked_examples() {
    let srv = start(Config::default());
    let examples = worked_examples();
    let dir = scratch("examples");
    let script = dir.join("examples.tql");
    // Blank lines and CRLF endings are fine: blank lines get no reply.
    let text: String = examples.iter().map(|(s, _)| format!("{s}\r\n\n")).collect();
    std::fs::write(&script, text).unwrap();
    let o = tau(
        srv.addr,
        &["--raw", "-f", script.to_str().unwrap()],
        "",
        &[],
    );
    let want: String = examples.iter().map(|(_, r)| format!("{r}\n")).collect();
    assert_eq!(stdout(&o), want);
    assert_eq!(o.status.code(), Some(1), "ERR replies give exit code 1");
}

#[test]
fn statements_from_stdin() {
    let srv = start(Config::default());
    let input = "CREATE DATABASE d\nUSE DATABASE d\nCREATE LENS x int\nAPPEND LENS x 0 10 7\nREDUCE LENS x 0 100 USING sum\n"; // sum of piece values
    let o = tau(srv.addr, &[], input, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "OK\nOK\nOK\nOK\nVAL i7\n");
}

#[test]
fn an_error_reply_gives_exit_code_1_and_the_script_goes_on() {
    let srv = start(Config::default());
    let o = tau(
        srv.addr,
        &[
            "-c",
            "FROB",
            "-c",
            "CREATE DATABASE d",
            "-c",
            "SHOW DATABASES",
        ],
        "",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("ERR parse error at column"), "{out}");
    assert_eq!(lines[1], "OK");
    assert_eq!(
        &lines[2..],
        [" database ", "----------", " d        ", "(1 row)"]
    );
}

#[test]
fn ten_thousand_pipelined_statements() {
    let srv = start(Config::default());
    let mut input = String::from("CREATE DATABASE d\nUSE DATABASE d\nCREATE LENS x int\n");
    for i in 0..10_000 {
        input.push_str(&format!("APPEND LENS x {i} {} {i}\n", i + 1));
    }
    input.push_str("REDUCE LENS x 0 10000 USING count\n");
    let o = tau(srv.addr, &["-f", "-"], &input, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 10_004);
    assert!(lines[..10_003].iter().all(|l| *l == "OK"));
    assert_eq!(lines[10_003], "VAL i10000");
}

#[test]
fn quit_ends_the_script() {
    let srv = start(Config::default());
    let o = tau(
        srv.addr,
        &[],
        "CREATE DATABASE d\nQUIT\nCREATE DATABASE e\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "OK\nOK BYE\n");
    let o = tau(
        srv.addr,
        &["--raw", "-c", "SHOW DATABASES", "-c", "\\q", "-c", "FROB"],
        "",
        &[],
    );
    assert_eq!(stdout(&o), "NAMES 1; d\n");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn load_csv_then_query() {
    let srv = start(Config::default());
    let dir = scratch("load");
    let csv = dir.join("x.csv");
    let n = 25_000i64;
    let mut text = String::from("start,end,value\n");
    for i in 0..n {
        text.push_str(&format!("{},{},{}\n", i * 10, i * 10 + 10, i % 7));
    }
    std::fs::write(&csv, text).unwrap();
    let load = format!("\\load x {}", csv.display());
    let o = tau(
        srv.addr,
        &[
            "-c",
            "CREATE DATABASE d",
            "-c",
            "USE DATABASE d",
            "-c",
            "CREATE LENS x int",
            "-c",
            &load,
            "-c",
            "REDUCE LENS x 0 250000 USING count",
            "-c",
            "REDUCE LENS x 0 250000 USING sum",
            "-c",
            "RANGE LENS x 99990 100020",
            "-c",
            "HISTORY LENS x",
        ],
        "",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["OK", "OK", "OK"]);
    assert_eq!(
        lines[3],
        "OK 25000 rows loaded into x (3 batches; header line 1 skipped: start,end,value)"
    );
    let sum: i64 = (0..n).map(|i| i % 7).sum();
    assert_eq!(lines[4], "VAL i25000");
    assert_eq!(lines[5], format!("VAL i{sum}"));
    // Rows 9999 .. 10001: 99990..100000 = 9999 % 7 = 3, then 4, then 5 (clipped).
    assert_eq!(
        &lines[6..12],
        [
            " start  | end    | value ",
            "--------+--------+-------",
            "  99990 | 100000 |     3 ",
            " 100000 | 100010 |     4 ",
            " 100010 | 100020 |     5 ",
            "(3 rows)",
        ]
    );
    // One layer per batch of 10,000 rows.
    assert_eq!(lines[lines.len() - 1], "(3 rows)");
}

#[test]
fn load_stops_at_the_first_error() {
    let srv = start(Config::default());
    let dir = scratch("loaderr");
    let bad_csv = dir.join("bad.csv");
    let mut text = String::new();
    for i in 0..30_000 {
        if i == 25_000 {
            text.push_str("250000,250000,1\n");
        } else {
            text.push_str(&format!("{},{},1\n", i * 10, i * 10 + 10));
        }
    }
    std::fs::write(&bad_csv, text).unwrap();
    let typed = dir.join("typed.csv");
    std::fs::write(&typed, "0,10,1\n10,20,hello\n").unwrap();
    let o = tau(
        srv.addr,
        &[
            "--raw",
            "-c",
            "CREATE DATABASE d",
            "-c",
            "USE DATABASE d",
            "-c",
            "CREATE LENS x int",
            "-c",
            &format!("\\load x {}", bad_csv.display()),
            "-c",
            "REDUCE LENS x 0 1000000 USING count",
            "-c",
            &format!("\\load x {}", typed.display()),
            "-c",
            "\\load x /nonexistent/file.csv",
            "-c",
            "\\load",
        ],
        "",
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(
        lines[3],
        format!(
            "ERR \\load x: {}: line 25001: invalid range (start >= end) (20000 rows loaded in 2 batches, each its own layer, before stopping)",
            bad_csv.display()
        )
    );
    assert_eq!(lines[4], "VAL i20000");
    assert_eq!(
        lines[5],
        format!(
            "ERR \\load x: {} lines 1-2: ERR type mismatch on x: expected int, got str (0 rows loaded in 0 batches, each its own layer, before stopping)",
            typed.display()
        )
    );
    assert!(lines[6].starts_with("ERR \\load x: cannot open /nonexistent/file.csv"));
    assert!(lines[7].starts_with("ERR usage: \\load LENS FILE"));
}

#[test]
fn user_and_password_from_the_environment() {
    let srv = start(auth_config());
    let ok = tau(
        srv.addr,
        &[
            "--user",
            "admin",
            "-c",
            "SHOW USERS",
            "-c",
            "SHOW GRANTS admin",
        ],
        "",
        &[("TAU_PASSWORD", "secret")],
    );
    assert_eq!(ok.status.code(), Some(0), "stderr: {}", stderr(&ok));
    assert_eq!(
        stdout(&ok),
        " user  \n-------\n admin \n(1 row)\n\
         \x20user  | database | perms \n\
         -------+----------+-------\n\
         \x20admin | *        | A     \n\
         (1 row)\n"
    );

    let bad = tau(
        srv.addr,
        &["--user", "admin", "-c", "SHOW USERS"],
        "",
        &[("TAU_PASSWORD", "wrong")],
    );
    assert_eq!(bad.status.code(), Some(3));
    assert_eq!(stdout(&bad), "");
    assert!(
        stderr(&bad).contains("ERR authentication failed"),
        "{}",
        stderr(&bad)
    );

    let none = tau(srv.addr, &["-c", "SHOW USERS", "-c", "SHOW USERS"], "", &[]);
    assert_eq!(none.status.code(), Some(3));
    assert_eq!(stdout(&none), "ERR authentication required\n");
    assert!(
        stderr(&none).contains("1 statement(s) got no reply"),
        "{}",
        stderr(&none)
    );
}

#[test]
fn a_password_with_spaces_and_quotes() {
    let srv = start(auth_config());
    let pw = r#"a "b" \c d"#;
    let create = format!(
        "CREATE USER bob PASSWORD {}",
        tau_client::wire::string_literal(pw).unwrap()
    );
    let o = tau(
        srv.addr,
        &["--user", "admin", "-c", &create],
        "",
        &[("TAU_PASSWORD", "secret")],
    );
    assert_eq!(stdout(&o), "OK\n", "{}", stderr(&o));
    let o = tau(
        srv.addr,
        &["--user", "bob", "--raw", "-c", "SHOW STATUS"],
        "",
        &[("TAU_PASSWORD", pw)],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert!(stdout(&o).starts_with("STATUS "));
}

#[test]
fn cannot_connect_gives_exit_code_3() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let o = tau(addr, &["-c", "SHOW DATABASES"], "", &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
}

#[test]
fn bad_arguments_give_exit_code_2() {
    let srv = start(Config::default());
    let o = tau(srv.addr, &["--frobnicate"], "", &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = tau(srv.addr, &["-f", "/nonexistent/script.tql"], "", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read /nonexistent/script.tql"));
}

#[test]
fn help_documents_modes_and_exit_codes() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_tau"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let h = stdout(&o);
    for needle in [
        "--host",
        "--tls",
        "--tls-ca",
        "--tls-insecure",
        "--user",
        "--raw",
        "-c",
        "-f",
        "\\load",
        "TAU_PASSWORD",
        "Exit status",
        "3  cannot connect",
    ] {
        assert!(h.contains(needle), "--help lacks {needle:?}:\n{h}");
    }
}

#[test]
fn commands_and_files_run_in_the_order_given() {
    let srv = start(Config::default());
    let dir = scratch("order");
    let f = dir.join("s.tql");
    std::fs::write(&f, "USE DATABASE d\nCREATE LENS x int\n").unwrap();
    let o = tau(
        srv.addr,
        &[
            "--raw",
            "-c",
            "CREATE DATABASE d",
            "-f",
            f.to_str().unwrap(),
            "-c",
            "SHOW LENSES",
        ],
        "",
        &[],
    );
    assert_eq!(stdout(&o), "OK\nOK\nOK\nNAMES 1; x\n");
}

/// Big statements and big replies both ways at once: a client that wrote everything
/// before reading would stall here (the server stops reading while its replies are
/// unread). 24 MB each way, pipelined.
#[test]
fn large_statements_and_replies_pipelined_both_ways() {
    let srv = start(Config::default());
    let mut input = String::from("CREATE DATABASE d\nUSE DATABASE d\nCREATE LENS x int\n");
    let (batches, rows) = (600i64, 2000i64);
    for b in 0..batches {
        input.push_str("BATCH APPEND LENS x { ");
        for r in 0..rows {
            let t = b * rows + r;
            if r > 0 {
                input.push_str("; ");
            }
            input.push_str(&format!("{t} {} {}", t + 1, 1_000_000 + r));
        }
        input.push_str(" }\n");
        input.push_str(&format!("RANGE LENS x {} {}\n", b * rows, (b + 1) * rows));
    }
    let o = tau(srv.addr, &["--raw"], &input, &[]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len() as i64, 3 + 2 * batches);
    for b in 0..batches as usize {
        assert_eq!(lines[3 + 2 * b], "OK");
        let range = lines[4 + 2 * b];
        assert!(range.starts_with(&format!("RANGE {rows}; {}:", b as i64 * rows)));
        assert_eq!(range.matches("; ").count() as i64, rows);
    }
}

/// A server that answers with a TLS alert (a plain client reached a TLS port), or that
/// closes without a word: exit code 3 and a hint, never the alert bytes as a reply.
#[test]
fn a_tls_server_or_a_silent_close_is_explained() {
    use std::io::{Read, Write};
    for alert in [true, false] {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf);
                if alert {
                    let _ = s.write_all(b"\x15\x03\x03\x00\x02\x02\x32");
                }
            }
        });
        let o = tau(addr, &["-c", "SHOW DATABASES"], "", &[]);
        assert_eq!(o.status.code(), Some(3), "alert: {alert}");
        assert_eq!(stdout(&o), "");
        assert!(stderr(&o).contains("--tls-ca"), "{}", stderr(&o));
    }
}

/// `producer | tau` with a producer that pauses: each reply shows up while the producer
/// waits, not when stdin closes.
#[test]
fn replies_to_a_slow_stdin_come_at_once() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let srv = start(Config::default());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tau"))
        .args(["--host", &srv.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines() {
            let _ = tx.send(l.unwrap_or_default());
        }
    });
    for (stmt, reply) in [
        ("CREATE DATABASE d", "OK"),
        ("SHOW DATABASES", " database "),
    ] {
        stdin.write_all(format!("{stmt}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        let got = rx.recv_timeout(Duration::from_secs(20));
        assert_eq!(got.as_deref(), Ok(reply), "{stmt}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
