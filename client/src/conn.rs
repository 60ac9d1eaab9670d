//! The connection: plain TCP or TLS (rustls, ring provider), driven by one `mio` poll loop
//! on the caller's thread. Statements are queued with [`Conn::queue`]; every call that
//! waits ([`Conn::next_line`], [`Conn::pump`]) writes what the socket takes *and* reads
//! what has arrived, so pipelining any amount can never deadlock against a server that
//! stops reading until its replies are read.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io::{self, Read, Write};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to reach the server.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `HOST:PORT`, or `unix:PATH` for a Unix socket (the server's admin socket).
    pub host: String,
    pub tls: bool,
    /// PEM file with the certificate(s) to trust (e.g. the server's self-signed one).
    pub tls_ca: Option<std::path::PathBuf>,
    /// Accept any server certificate (no verification at all).
    pub tls_insecure: bool,
    pub connect_timeout: Option<Duration>,
}

const SOCK: Token = Token(0);

/// A TCP socket, or a Unix one (tau-server's admin socket, `unix:PATH`).
enum Sock {
    Tcp(TcpStream),
    Unix(mio::net::UnixStream),
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.flush(),
            Sock::Unix(s) => s.flush(),
        }
    }
}

impl Sock {
    fn register(&mut self, poll: &Poll) -> io::Result<()> {
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self {
            Sock::Tcp(s) => poll.registry().register(s, SOCK, interest),
            Sock::Unix(s) => poll.registry().register(s, SOCK, interest),
        }
    }
}

/// Connect to `HOST:PORT` (the first address that answers).
fn connect_tcp(host: &str, timeout: Duration) -> io::Result<Sock> {
    let addrs: Vec<_> = host
        .to_socket_addrs()
        .map_err(|e| other(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = other(format!("{host} resolves to no address"));
    let mut std_sock = None;
    for a in addrs {
        match std::net::TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                std_sock = Some(s);
                break;
            }
            Err(e) => last = other(format!("cannot connect to {host}: {e}")),
        }
    }
    let std_sock = std_sock.ok_or(last)?;
    std_sock.set_nodelay(true)?;
    std_sock.set_nonblocking(true)?;
    Ok(Sock::Tcp(TcpStream::from_std(std_sock)))
}

pub struct Conn {
    sock: Sock,
    poll: Poll,
    events: Events,
    tls: Option<Box<rustls::ClientConnection>>,
    /// Plaintext not yet handed on (to the socket, or to rustls).
    out: Vec<u8>,
    out_pos: usize,
    /// Plaintext received; `in_pos` is where the next line starts, `scan` how far a
    /// newline has been looked for.
    inbuf: Vec<u8>,
    in_pos: usize,
    scan: usize,
    eof: bool,
    write_closed: bool,
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// The host part of `HOST:PORT` (brackets of `[v6]` removed), for SNI and verification.
fn host_name(host: &str) -> &str {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    h.trim_start_matches('[').trim_end_matches(']')
}

fn tls_config(opts: &ConnectOptions) -> io::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| other(format!("TLS setup: {e}")))?;
    let cfg = if opts.tls_insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let Some(ca) = &opts.tls_ca else {
            return Err(other(
                "--tls needs --tls-ca FILE (the server's certificate or its CA, PEM) or --tls-insecure"
                    .into(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| other(format!("cannot read {}: {e}", ca.display())))?;
        for c in certs {
            let c = c.map_err(|e| other(format!("bad PEM in {}: {e}", ca.display())))?;
            roots
                .add(c)
                .map_err(|e| other(format!("bad certificate in {}: {e}", ca.display())))?;
        }
        if roots.is_empty() {
            return Err(other(format!("no certificate in {}", ca.display())));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(cfg)
}

/// The peer is gone: what it sent before going can still be read.
fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

impl Conn {
    /// Connect (and for TLS, finish the handshake, so a bad certificate is reported here).
    pub fn connect(opts: &ConnectOptions) -> io::Result<Conn> {
        let timeout = opts.connect_timeout.unwrap_or(Duration::from_secs(10));
        let mut sock = match opts.host.strip_prefix("unix:") {
            Some(path) => {
                if opts.tls {
                    return Err(other(format!(
                        "{}: a Unix socket is plain text (no --tls)",
                        opts.host
                    )));
                }
                let s = std::os::unix::net::UnixStream::connect(path)
                    .map_err(|e| other(format!("cannot connect to {}: {e}", opts.host)))?;
                s.set_nonblocking(true)?;
                Sock::Unix(mio::net::UnixStream::from_std(s))
            }
            None => connect_tcp(&opts.host, timeout)?,
        };
        let poll = Poll::new()?;
        sock.register(&poll)?;
        let tls = if opts.tls {
            let cfg = tls_config(opts)?;
            let name = ServerName::try_from(host_name(&opts.host).to_string())
                .map_err(|e| other(format!("bad server name {:?}: {e}", opts.host)))?;
            let c = rustls::ClientConnection::new(Arc::new(cfg), name)
                .map_err(|e| other(format!("TLS setup: {e}")))?;
            Some(Box::new(c))
        } else {
            None
        };
        let mut conn = Conn {
            sock,
            poll,
            events: Events::with_capacity(16),
            tls,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            in_pos: 0,
            scan: 0,
            eof: false,
            write_closed: false,
        };
        if conn.tls.is_some() {
            let deadline = Instant::now() + timeout;
            while conn.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(other("TLS handshake timed out".into()));
                }
                conn.pump(Some(left))?;
                if conn.eof {
                    return Err(other(
                        "the server closed the connection during the TLS handshake".into(),
                    ));
                }
            }
        }
        Ok(conn)
    }

    /// Queue one statement (a `\n` is added). Nothing is written until the next wait.
    pub fn queue(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.push(b'\n');
    }

    /// Bytes queued but not yet written to the socket.
    pub fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// The server closed its side.
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// One round: write what the socket takes, wait up to `timeout` (`None`: until
    /// something happens) for the socket, then read everything available.
    pub fn pump(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.write_some()?;
        if self.eof {
            return Ok(());
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        // Edge-triggered readiness: always drain both directions until WouldBlock.
        self.read_some()?;
        self.write_some()
    }

    /// A complete reply line already received, if any (without its `\n`, and without a
    /// `\r` before it).
    pub fn try_line(&mut self) -> Option<String> {
        let nl = self.inbuf[self.scan..].iter().position(|&b| b == b'\n');
        let Some(i) = nl else {
            self.scan = self.inbuf.len();
            return None;
        };
        let end = self.scan + i;
        let mut line = &self.inbuf[self.in_pos..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let s = String::from_utf8_lossy(line).into_owned();
        self.in_pos = end + 1;
        self.scan = self.in_pos;
        if self.in_pos > 1 << 16 && self.in_pos * 2 > self.inbuf.len() {
            self.inbuf.drain(..self.in_pos);
            self.scan -= self.in_pos;
            self.in_pos = 0;
        }
        Some(s)
    }

    /// The next reply line, waiting for it; `None` once the server has closed and every
    /// line is taken (a last line without `\n` is still returned).
    pub fn next_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(l) = self.try_line() {
                return Ok(Some(l));
            }
            if self.eof {
                if self.in_pos < self.inbuf.len() {
                    let s = String::from_utf8_lossy(&self.inbuf[self.in_pos..]).into_owned();
                    self.in_pos = self.inbuf.len();
                    self.scan = self.in_pos;
                    return Ok(Some(s));
                }
                return Ok(None);
            }
            self.pump(None)?;
        }
    }

    fn write_some(&mut self) -> io::Result<()> {
        if self.eof || self.write_closed {
            return Ok(());
        }
        match &mut self.tls {
            None => {
                while self.out_pos < self.out.len() {
                    match self.sock.write(&self.out[self.out_pos..]) {
                        Ok(0) => return Err(other("the server stopped accepting data".into())),
                        Ok(n) => self.out_pos += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if peer_gone(&e) => {
                            self.drop_output();
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Some(tls) => loop {
                // Hand rustls the plaintext it takes, then push its records out.
                if self.out_pos < self.out.len() && !tls.is_handshaking() {
                    let n = tls.writer().write(&self.out[self.out_pos..])?;
                    self.out_pos += n;
                }
                let mut progressed = false;
                while tls.wants_write() {
                    match tls.write_tls(&mut self.sock) {
                        Ok(0) => break,
                        Ok(_) => progressed = true,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if peer_gone(&e) => {
                            self.drop_output();
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                if !progressed || self.out_pos >= self.out.len() || tls.wants_write() {
                    break;
                }
            },
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 1 << 20 {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// Writing failed because the server went away: nothing more will be written.
    fn drop_output(&mut self) {
        self.write_closed = true;
        self.out = Vec::new();
        self.out_pos = 0;
    }

    fn read_some(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 64 << 10];
        match &mut self.tls {
            None => loop {
                match self.sock.read(&mut buf) {
                    Ok(0) => {
                        self.eof = true;
                        return Ok(());
                    }
                    Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                        self.eof = true;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            },
            Some(tls) => loop {
                let (mut closed, mut drained) = (false, false);
                match tls.read_tls(&mut self.sock) {
                    Ok(0) => closed = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => drained = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => closed = true,
                    Err(e) => return Err(e),
                }
                let state = tls
                    .process_new_packets()
                    .map_err(|e| other(format!("TLS error: {e}")))?;
                let mut left = state.plaintext_bytes_to_read();
                while left > 0 {
                    let take = left.min(buf.len());
                    let n = tls.reader().read(&mut buf[..take])?;
                    if n == 0 {
                        break;
                    }
                    self.inbuf.extend_from_slice(&buf[..n]);
                    left -= n;
                }
                if closed || state.peer_has_closed() {
                    self.eof = true;
                    return Ok(());
                }
                if drained {
                    return Ok(());
                }
            },
        }
    }
}

/// `--tls-insecure`: accepts any certificate. Signatures are still checked with the real
/// algorithms, so the handshake itself is sound; only the identity is not.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_socket_is_reached_with_unix_path() {
        let dir = std::env::temp_dir().join(format!("tau-client-unix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("admin.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::BufRead;
            let (s, _) = listener.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            (&s).write_all(format!("VAL s{}", line.trim()).as_bytes())
                .unwrap();
            (&s).write_all(b"\n").unwrap();
        });
        let opts = ConnectOptions {
            host: format!("unix:{}", path.display()),
            ..ConnectOptions::default()
        };
        let mut c = Conn::connect(&opts).unwrap();
        c.queue("hello");
        assert_eq!(c.next_line().unwrap().as_deref(), Some("VAL shello"));
        server.join().unwrap();
        let tls = ConnectOptions { tls: true, ..opts };
        assert!(Conn::connect(&tls).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:7070"), "localhost");
        assert_eq!(host_name("[::1]:7070"), "::1");
        assert_eq!(host_name("example.com"), "example.com");
    }
}
