//! `tau`: the command-line client for tau-server. See docs/CLIENT.md and `tau --help`.

use clap::{CommandFactory, FromArgMatches, Parser};
use rustyline::error::ReadlineError;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;
use tau_client::conn::{Conn, ConnectOptions};
use tau_client::session::{Fatal, Session};
use tau_client::wire::string_literal;

/// Exit codes (also in docs/CLIENT.md and --help).
const EXIT_ERR_REPLY: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_CONNECTION: i32 = 3;

const AFTER_HELP: &str = "\
Modes:
  tau                      an interactive prompt when stdin is a terminal (history in
                           ~/.tau_history or $TAU_HISTFILE; a pasted block of lines is
                           sent as one statement per line; Ctrl-C cancels the line being
                           edited; Ctrl-D, \\q, QUIT or EXIT leaves)
  tau -c STMT [-c STMT]    run the statements
  tau -f FILE [-f FILE]    run a script, one statement per line (-f - reads stdin)
  ... | tau                run the statements on stdin when it is not a terminal
-c and -f may be mixed and run in the order given. Scripts are pipelined: statements are
sent ahead and replies are shown in order, one per statement. Blank lines are skipped.

Client commands (prompt and scripts):
  \\load LENS FILE [TYPE]   append a CSV of start,end,value rows as pipelined BATCH APPEND
                           statements (10,000 rows each); see docs/CLIENT.md
  \\help, \\q

Output: RANGE, HISTORY and SHOW replies are aligned tables (strings decoded); all other
replies are printed as sent. --raw prints every reply as sent.

Exit status (-c, -f, stdin):
  0  every statement was answered and none with ERR
  1  some reply was ERR (the script still runs to its end), or a \\load failed
  2  bad arguments, an unreadable -f file, or no password available
  3  cannot connect, TLS failure, authentication failed, or the connection was lost
The interactive prompt exits 0, or 3 when the connection is lost and cannot be remade.

Environment:
  TAU_PASSWORD   the password for --user (otherwise it is asked for, without echo)
  TAU_HISTFILE   the prompt's history file";

/// tau: the command-line client for tau-server.
#[derive(Parser, Debug)]
#[command(
    name = "tau",
    version,
    after_help = "See `tau --help` for modes, \\load, output and exit codes (also docs/CLIENT.md).",
    after_long_help = AFTER_HELP
)]
struct Cli {
    /// The server to connect to: HOST:PORT, or unix:PATH for tau-server's admin socket
    /// (<data-dir>/admin.sock, usable when every TCP slot is taken).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:7070")]
    host: String,
    /// Connect with TLS. Needs --tls-ca or --tls-insecure.
    #[arg(long)]
    tls: bool,
    /// Trust the certificate(s) in this PEM file (e.g. the server's
    /// <data-dir>/tls-self-signed.pem). Implies --tls.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Accept any server certificate: encrypted, but not authenticated. Implies --tls.
    #[arg(long)]
    tls_insecure: bool,
    /// Log in as NAME (sends AUTH first). The password comes from TAU_PASSWORD or a prompt.
    #[arg(long, short = 'u', value_name = "NAME")]
    user: Option<String>,
    /// Print replies exactly as the server sent them (no tables).
    #[arg(long)]
    raw: bool,
    /// Run this statement (or client command); may be repeated.
    #[arg(short = 'c', long = "command", value_name = "STATEMENT")]
    command: Vec<String>,
    /// Run the statements in FILE ("-" for stdin); may be repeated.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Vec<PathBuf>,
}

/// Something to run, in command-line order.
enum Input {
    Command(String),
    File(PathBuf),
}

fn main() {
    std::process::exit(run());
}

fn connect(opts: &ConnectOptions, auth: Option<&(String, String)>) -> Result<Conn, String> {
    let mut conn = Conn::connect(opts).map_err(|e| e.to_string())?;
    if let Some((user, password)) = auth {
        let pw = string_literal(password)
            .ok_or_else(|| "a password cannot hold a line break".to_string())?;
        conn.queue(&format!("AUTH {user} {pw}"));
        match conn.next_line() {
            Ok(Some(l)) if l == "OK" => {}
            Ok(Some(l)) => return Err(format!("AUTH as {user}: {l}")),
            Ok(None) => return Err("the server closed the connection during AUTH".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(conn)
}

fn run() -> i32 {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let mut inputs: Vec<(usize, Input)> = Vec::new();
    if let Some(idx) = matches.indices_of("command") {
        inputs.extend(idx.zip(cli.command.iter().cloned().map(Input::Command)));
    }
    if let Some(idx) = matches.indices_of("file") {
        inputs.extend(idx.zip(cli.file.iter().cloned().map(Input::File)));
    }
    inputs.sort_by_key(|(i, _)| *i);
    for (_, i) in &inputs {
        if let Input::File(p) = i {
            if p.as_os_str() != "-" {
                if let Err(e) = std::fs::File::open(p) {
                    eprintln!("tau: cannot read {}: {e}", p.display());
                    return EXIT_USAGE;
                }
            }
        }
    }

    if cli.tls && cli.tls_ca.is_none() && !cli.tls_insecure {
        eprintln!(
            "tau: --tls needs --tls-ca FILE (the server's certificate or its CA, PEM) or --tls-insecure"
        );
        return EXIT_USAGE;
    }
    let auth = match &cli.user {
        None => None,
        Some(u) => {
            let pw = match std::env::var("TAU_PASSWORD") {
                Ok(p) => p,
                Err(_) => match rpassword::prompt_password(format!("Password for {u}: ")) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("tau: no password for {u} (set TAU_PASSWORD): {e}");
                        return EXIT_USAGE;
                    }
                },
            };
            Some((u.clone(), pw))
        }
    };
    let opts = ConnectOptions {
        host: cli.host.clone(),
        tls: cli.tls || cli.tls_ca.is_some() || cli.tls_insecure,
        tls_ca: cli.tls_ca.clone(),
        tls_insecure: cli.tls_insecure,
        connect_timeout: None,
    };
    let conn = match connect(&opts, auth.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tau: {e}");
            return EXIT_CONNECTION;
        }
    };

    if inputs.is_empty() && io::stdin().is_terminal() {
        return repl(conn, &cli, &opts, auth.as_ref());
    }
    if inputs.is_empty() {
        inputs.push((0, Input::File(PathBuf::from("-"))));
    }
    let out = BufWriter::new(io::stdout().lock());
    let mut s = Session::new(conn, out, cli.raw);
    s.progress = io::stderr().is_terminal();
    let result = run_inputs(&mut s, &inputs);
    let _ = s.out.flush();
    match result {
        Ok(()) if s.errors > 0 => EXIT_ERR_REPLY,
        Ok(()) => 0,
        Err(Fatal::Io(e)) if e.kind() == io::ErrorKind::InvalidInput => {
            eprintln!("tau: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("tau: {e}");
            if matches!(e, Fatal::Lost { .. }) && s.replies == 0 && !opts.tls {
                eprintln!("tau: (no reply at all: is the server expecting TLS? try --tls-ca FILE)");
            }
            EXIT_CONNECTION
        }
    }
}

fn run_inputs<W: Write>(s: &mut Session<W>, inputs: &[(usize, Input)]) -> Result<(), Fatal> {
    for (_, input) in inputs {
        match input {
            Input::Command(c) => {
                for line in c.split('\n') {
                    s.submit(line)?;
                }
            }
            Input::File(p) if p.as_os_str() == "-" => {
                run_lines(s, io::BufReader::with_capacity(1 << 16, io::stdin()), true)?
            }
            Input::File(p) => {
                let f = std::fs::File::open(p).map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?;
                run_lines(s, io::BufReader::with_capacity(1 << 16, f), false)?;
            }
        }
        if s.quit {
            break;
        }
    }
    s.drain()
}

/// Submit every line of `r` (any bytes: a line that is not UTF-8 is sent with
/// replacement characters, and the server answers it with an error). With `stream` (a
/// pipe that may pause, like `producer | tau`), every reply is shown before waiting for
/// more input, so a slow producer still sees its answers at once.
fn run_lines<W: Write, R: io::Read>(
    s: &mut Session<W>,
    mut r: io::BufReader<R>,
    stream: bool,
) -> Result<(), Fatal> {
    let mut buf = Vec::new();
    loop {
        if stream && r.buffer().is_empty() {
            s.drain()?;
        }
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        s.submit(line.strip_suffix('\n').unwrap_or(&line))?;
        if s.quit {
            return Ok(());
        }
    }
}

fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TAU_HISTFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(|h| PathBuf::from(h).join(".tau_history"))
}

/// Lines that may hold a password stay out of the history file.
fn keep_in_history(line: &str) -> bool {
    let upper = line.trim_start().to_ascii_uppercase();
    !(upper.starts_with("AUTH") || upper.contains("PASSWORD") || line.trim().is_empty())
}

fn repl(conn: Conn, cli: &Cli, opts: &ConnectOptions, auth: Option<&(String, String)>) -> i32 {
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(10_000)
        .map(|b| b.build())
        .unwrap_or_default();
    let mut rl = match rustyline::DefaultEditor::with_config(config) {
        Ok(rl) => rl,
        Err(e) => {
            eprintln!("tau: cannot start the line editor: {e}");
            return EXIT_USAGE;
        }
    };
    let hist = history_path();
    if let Some(h) = &hist {
        let _ = rl.load_history(h);
    }
    println!(
        "tau {} connected to {}{}. Type \\help for help, \\q to quit.",
        env!("CARGO_PKG_VERSION"),
        opts.host,
        if opts.tls { " (TLS)" } else { "" }
    );
    let mut s = Session::new(conn, io::stdout(), cli.raw);
    s.progress = io::stderr().is_terminal();
    let code = loop {
        let prompt = match (&s.database, s.in_transaction) {
            (Some(db), true) => format!("tau:{db}*> "),
            (Some(db), false) => format!("tau:{db}> "),
            (None, true) => "tau*> ".to_string(),
            (None, false) => "tau> ".to_string(),
        };
        match rl.readline(&prompt) {
            Ok(text) => {
                if let Err(e) = reconnect_if_closed(&mut s, opts, auth) {
                    eprintln!("tau: {e}");
                    break EXIT_CONNECTION;
                }
                let mut result = Ok(());
                for line in text.split(['\n', '\r']) {
                    if keep_in_history(line) {
                        let _ = rl.add_history_entry(line);
                    }
                    result = s.submit(line);
                    if result.is_err() || s.quit {
                        break;
                    }
                }
                if result.is_ok() {
                    result = s.drain();
                }
                if let Err(e) = result {
                    eprintln!("tau: {e}");
                    if s.quit {
                        break 0;
                    }
                    // Try once to carry on with a fresh connection.
                    if let Err(e) = reconnect_if_closed(&mut s, opts, auth) {
                        eprintln!("tau: {e}");
                        break EXIT_CONNECTION;
                    }
                }
                if s.quit {
                    break 0;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break 0,
            Err(e) => {
                eprintln!("tau: {e}");
                break 0;
            }
        }
    };
    if let Some(h) = &hist {
        let _ = rl.save_history(h);
    }
    code
}

/// The server may close an idle connection: make a new one (AUTH and USE DATABASE again)
/// before the next statement, rather than failing it.
fn reconnect_if_closed(
    s: &mut Session<io::Stdout>,
    opts: &ConnectOptions,
    auth: Option<&(String, String)>,
) -> Result<(), String> {
    s.conn
        .pump(Some(Duration::ZERO))
        .map_err(|e| e.to_string())?;
    while let Some(line) = s.conn.try_line() {
        // Said by the server before it closed (e.g. why).
        println!("{line}");
    }
    if !s.conn.at_eof() {
        return Ok(());
    }
    eprintln!(
        "tau: the server closed the connection; reconnecting to {}",
        opts.host
    );
    s.conn = connect(opts, auth)?;
    if s.in_transaction {
        eprintln!("tau: the open transaction was rolled back");
        s.in_transaction = false;
    }
    if let Some(db) = s.database.clone() {
        s.conn.queue(&format!("USE DATABASE {db}"));
        match s.conn.next_line() {
            Ok(Some(l)) if l == "OK" => {}
            Ok(Some(l)) => {
                eprintln!("tau: USE DATABASE {db}: {l}");
                s.database = None;
            }
            Ok(None) => return Err("the server closed the connection".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
