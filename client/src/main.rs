//! `tau`: the command-line client (built out by the server issue).

fn main() {
    eprintln!("tau: the client is not built yet");
    std::process::exit(2);
}
