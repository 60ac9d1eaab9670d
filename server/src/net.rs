//! The network side: the accept loop, one task per connection (a reader and a writer
//! half joined), backpressure, limits and the per-address AUTH throttle.
//!
//! Bytes go to the engine thread as `Event::Bytes`; replies come back through a
//! [`ConnSink`] the engine thread calls without blocking. Backpressure keeps every
//! connection's memory bounded: the reader stops reading its socket while the engine
//! holds more than `input_window_bytes` of its input unexecuted, or while more than
//! `output_window_bytes` of its replies wait to be written (a client that never reads).

use crate::metrics::Metrics;
use crate::{log, Level};
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::{Async, Executor, Timer};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tau_engine::Event;
use tau_io::{ConnSink, Input};

/// What the engine thread hands a connection's writer.
enum Out {
    /// Reply bytes; `true` if they may have made the engine hold the connection (they
    /// reached `reply_burst_bytes`): the writer resumes it once they are written.
    Bytes(Vec<u8>, bool),
    Close,
}

/// Reads from a socket are at most this big.
const READ_BYTES: usize = 64 << 10;
/// Replies queued together are written with one call, up to this size.
const WRITE_COALESCE_BYTES: usize = 256 << 10;
/// How long a rejected or throttled client gets to read its one line.
const REJECT_LINGER: Duration = Duration::from_secs(1);
/// Plain connections turned away that linger (reading what the client still sends, so
/// that closing does not reset the line away) at once. Past this, a rejected socket gets
/// its line and FIN all the same, and is closed as soon as its pending input is read.
const MAX_REJECTING: usize = 256;
/// TLS connections being turned away at once (each needs a handshake to be told why);
/// past this they are closed without a word.
const MAX_REJECTING_TLS: usize = 64;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections on the admin socket at once.
pub const ADMIN_CONNECTIONS_MAX: usize = 8;

pub const CONNECTION_LIMIT: &[u8] = b"ERR server at connection limit\n";
pub const ADDRESS_LIMIT: &[u8] =
    b"ERR server at connection limit: too many connections from this address\n";
pub const THROTTLED: &[u8] =
    b"ERR authentication failed: too many failed attempts from this address, retry later\n";

/// Server-wide state shared by every connection task.
pub struct Server {
    pub engine: std::sync::mpsc::Sender<Input>,
    pub metrics: Arc<Metrics>,
    pub tls: Option<futures_rustls::TlsAcceptor>,
    /// Closed when the server starts stopping.
    pub shutdown: Receiver<()>,
    pub auth: bool,
    pub max_connections: usize,
    pub max_per_address: usize,
    pub idle_timeout: Option<Duration>,
    /// With auth on: the first line must be complete this long after the connection
    /// was accepted.
    pub auth_timeout: Option<Duration>,
    /// A line must be complete this long after its first byte arrived.
    pub line_timeout: Option<Duration>,
    pub input_window: u64,
    pub output_window: usize,
    /// TCP connections being served (the connection limit counts these).
    pub active: AtomicUsize,
    /// Connections on the admin socket (not counted against any limit but their own).
    pub admin_active: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    rejecting: AtomicUsize,
    next_id: AtomicU64,
    limiter: Mutex<Limiter>,
    /// Per address, at most as many AUTH checks in flight as the throttle allows failures
    /// (`max_auth_failures`): a connection waits for a slot before its AUTH is read, and
    /// frees it with its first reply. Each check takes a throttle token when it starts
    /// (refunded on success): when failures were counted only as replies were written,
    /// 1,000 concurrent wrong AUTHs were all checked. The slots keep a pool of good logins
    /// from one address waiting its turn instead of being turned away.
    auth_slots: Mutex<HashMap<IpAddr, Arc<smol::lock::Semaphore>>>,
    auth_concurrency: usize,
}

impl Server {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: std::sync::mpsc::Sender<Input>,
        metrics: Arc<Metrics>,
        tls: Option<futures_rustls::TlsAcceptor>,
        shutdown: Receiver<()>,
        s: &crate::config::Settings,
    ) -> Server {
        Server {
            engine,
            metrics,
            tls,
            shutdown,
            auth: s.auth,
            max_connections: s.max_connections,
            max_per_address: s.max_connections_per_address,
            idle_timeout: secs(s.idle_timeout_secs),
            auth_timeout: secs(s.auth_timeout_secs),
            line_timeout: secs(s.line_timeout_secs),
            input_window: s.input_window_bytes as u64,
            output_window: s.output_window_bytes,
            active: AtomicUsize::new(0),
            admin_active: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
            rejecting: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            limiter: Mutex::new(Limiter::new(
                s.max_auth_failures,
                Duration::from_secs(s.failure_refill_secs),
            )),
            auth_slots: Mutex::new(HashMap::new()),
            auth_concurrency: s.max_auth_failures.max(1) as usize,
        }
    }

    fn stopping(&self) -> bool {
        self.shutdown.is_closed()
    }

    /// Take a slot for a new TCP connection from `ip`, or say why not.
    fn admit(&self, ip: IpAddr) -> Result<(), &'static [u8]> {
        if self.active.load(Ordering::Acquire) >= self.max_connections {
            return Err(CONNECTION_LIMIT);
        }
        let mut m = self.per_address.lock().expect("per-address lock");
        let n = m.entry(address_key(ip)).or_insert(0);
        if *n >= self.max_per_address {
            return Err(ADDRESS_LIMIT);
        }
        *n += 1;
        Ok(())
    }

    fn release(&self, ip: IpAddr) {
        let key = address_key(ip);
        let mut m = self.per_address.lock().expect("per-address lock");
        if let Some(n) = m.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&key);
            }
        }
    }

    async fn until_shutdown(&self) {
        let _ = self.shutdown.recv().await;
    }
}

/// The unit the per-address connection cap counts: an IPv4 address (also when mapped
/// into IPv6), or an IPv6 /64, since one IPv6 client usually holds a whole /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !((1u128 << 64) - 1),
            )),
        },
    }
}

fn secs(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

/// Failed AUTH attempts per client address: a token bucket holding `cap` failures,
/// refilled by one every `refill`. An address with an empty bucket is turned away
/// before its password is checked, so guessing costs the attacker time and costs the
/// server no Argon2 work.
pub struct Limiter {
    cap: f64,
    refill: Duration,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

/// Addresses remembered at most; full buckets are forgotten first.
const LIMITER_ADDRESSES_MAX: usize = 100_000;

impl Limiter {
    pub fn new(cap: u32, refill: Duration) -> Limiter {
        Limiter {
            cap: f64::from(cap.max(1)),
            refill: refill.max(Duration::from_millis(1)),
            buckets: HashMap::new(),
        }
    }

    fn level(&mut self, ip: IpAddr, now: Instant) -> f64 {
        let (cap, refill) = (self.cap, self.refill);
        let Some((tokens, at)) = self.buckets.get_mut(&ip) else {
            return cap;
        };
        let gained = now.saturating_duration_since(*at).as_secs_f64() / refill.as_secs_f64();
        *tokens = (*tokens + gained).min(cap);
        *at = now;
        *tokens
    }

    /// No failures left for `ip`.
    pub fn blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.level(ip, now) < 1.0
    }

    /// Take a token for an AUTH about to be checked (as if it failed): `false`, and
    /// nothing taken, when the address has none left. See [`Limiter::refund`].
    pub fn reserve(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.blocked(ip, now) {
            return false;
        }
        self.failure(ip, now);
        true
    }

    /// The AUTH succeeded: give its token back.
    pub fn refund(&mut self, ip: IpAddr, now: Instant) {
        let cap = self.cap;
        let level = self.level(ip, now);
        if level + 1.0 >= cap {
            // Full again: forget the address (keeps the table small).
            self.buckets.remove(&ip);
        } else if let Some((tokens, _)) = self.buckets.get_mut(&ip) {
            *tokens = level + 1.0;
        }
    }

    pub fn failure(&mut self, ip: IpAddr, now: Instant) {
        let left = self.level(ip, now) - 1.0;
        if self.buckets.len() >= LIMITER_ADDRESSES_MAX && !self.buckets.contains_key(&ip) {
            let cap = self.cap;
            let refill = self.refill.as_secs_f64();
            self.buckets.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() / refill < cap
            });
        }
        self.buckets.insert(ip, (left.max(0.0), now));
    }
}

/// What a connection's two halves and the engine thread share.
struct ConnState {
    /// Reply bytes handed over by the engine and not yet written to the socket.
    unsent: AtomicUsize,
    /// Input bytes the engine has taken off its queue (see `ConnSink::consumed`).
    consumed: AtomicU64,
    /// Poked when `unsent` falls or `consumed` grows; holds at most one poke.
    wake: Sender<()>,
    /// Statement lines received and not yet answered, with when they arrived, run-length
    /// encoded: for the latency histogram and the idle check.
    lines: Mutex<VecDeque<(u32, Instant)>>,
    /// With auth on: the AUTH throttle token this connection reserved is still out (not yet
    /// refunded by a good AUTH, nor spent by a failed one).
    auth_token_out: std::sync::atomic::AtomicBool,
}

impl ConnState {
    fn outstanding(&self) -> bool {
        !self.lines.lock().expect("lines lock").is_empty()
    }

    /// `n` reply lines went out: each answers the oldest unanswered line.
    fn answered(&self, mut n: usize, m: &Metrics) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let mut q = self.lines.lock().expect("lines lock");
        while n > 0 {
            let Some((count, at)) = q.front_mut() else {
                return;
            };
            let secs = now.saturating_duration_since(*at).as_secs_f64();
            let take = (*count as usize).min(n);
            for _ in 0..take {
                m.latency.observe(secs);
            }
            n -= take;
            *count -= take as u32;
            if *count == 0 {
                q.pop_front();
            }
        }
    }
}

/// The engine thread's handle on a connection.
struct NetSink {
    out: Sender<Out>,
    st: Arc<ConnState>,
    reply_burst: usize,
}

impl ConnSink for NetSink {
    fn send(&mut self, bytes: Vec<u8>) {
        self.st.unsent.fetch_add(bytes.len(), Ordering::AcqRel);
        let held = bytes.len() >= self.reply_burst;
        let _ = self.out.try_send(Out::Bytes(bytes, held));
    }
    fn close(&mut self) {
        let _ = self.out.try_send(Out::Close);
    }
    fn consumed(&mut self, consumed: u64) {
        self.st.consumed.store(consumed, Ordering::Release);
        let _ = self.st.wake.try_send(());
    }
}

/// Counts non-blank lines (blank ones get no reply) across read boundaries.
struct LineCounter {
    in_line: bool,
}

impl LineCounter {
    fn count(&mut self, bytes: &[u8]) -> u32 {
        let mut n = 0;
        for &b in bytes {
            match b {
                b'\n' => {
                    n += u32::from(self.in_line);
                    self.in_line = false;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => self.in_line = true,
            }
        }
        n
    }
}

/// Accept connections until the server stops; then drop the listener.
pub async fn accept_loop(
    listener: Async<TcpListener>,
    sv: Arc<Server>,
    ex: Arc<Executor<'static>>,
) {
    loop {
        let next = async { Some(listener.accept().await) }
            .or(async {
                sv.until_shutdown().await;
                None
            })
            .await;
        let Some(accepted) = next else { break };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, typically: back off instead of spinning.
                log(Level::Warn, format_args!("accept failed: {e}"));
                Timer::after(Duration::from_millis(50)).await;
                continue;
            }
        };
        let accepted_at = Instant::now();
        let _ = stream.get_ref().set_nodelay(true);
        if let Err(line) = sv.admit(peer.ip()) {
            sv.metrics.connections_rejected.inc();
            reject(&sv, stream, line, &ex);
            continue;
        }
        let guard = Active::new(sv.clone(), Some(peer.ip()));
        ex.spawn(async move {
            serve(stream, peer, &guard.sv, accepted_at).await;
            drop(guard);
        })
        .detach();
    }
    log(Level::Debug, format_args!("stopped accepting"));
}

/// The operator's way in when every TCP slot is taken (by a flood, or by slow clients
/// that have not hit their deadlines yet): a Unix socket, reachable only through file
/// permissions (it is created 0600 in the private data directory), with its own small
/// limit and none of the TCP limits. Plain text; AUTH is required as on TCP.
pub async fn accept_admin_loop(
    listener: Async<std::os::unix::net::UnixListener>,
    sv: Arc<Server>,
    ex: Arc<Executor<'static>>,
) {
    // Unix peers have no IP address: they share one AUTH-throttle bucket, apart from
    // every TCP client.
    let peer = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    loop {
        let next = async { Some(listener.accept().await) }
            .or(async {
                sv.until_shutdown().await;
                None
            })
            .await;
        let Some(accepted) = next else { break };
        let Ok((stream, _)) = accepted else {
            Timer::after(Duration::from_millis(50)).await;
            continue;
        };
        let accepted_at = Instant::now();
        if sv.admin_active.load(Ordering::Acquire) >= ADMIN_CONNECTIONS_MAX {
            sv.metrics.connections_rejected.inc();
            ex.spawn(say_and_close(stream, CONNECTION_LIMIT)).detach();
            continue;
        }
        let guard = Active::new(sv.clone(), None);
        ex.spawn(async move {
            run(stream, peer, &guard.sv, accepted_at).await;
            drop(guard);
        })
        .detach();
    }
}

/// Counts a connection as active for as long as it lives: a TCP one (with its address)
/// against the connection limits, an admin-socket one (`None`) against its own.
struct Active {
    sv: Arc<Server>,
    ip: Option<IpAddr>,
}

impl Active {
    fn new(sv: Arc<Server>, ip: Option<IpAddr>) -> Active {
        match ip {
            Some(_) => sv.active.fetch_add(1, Ordering::AcqRel),
            None => sv.admin_active.fetch_add(1, Ordering::AcqRel),
        };
        sv.metrics.connections_total.inc();
        sv.metrics.connections_active.inc();
        Active { sv, ip }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        match self.ip {
            Some(ip) => {
                self.sv.release(ip);
                self.sv.active.fetch_sub(1, Ordering::AcqRel)
            }
            None => self.sv.admin_active.fetch_sub(1, Ordering::AcqRel),
        };
        self.sv.metrics.connections_active.dec();
    }
}

/// Say one line and close, giving the client a moment to read it (closing a socket
/// with unread input would reset it and could destroy the line in flight).
async fn say_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, line: &[u8]) {
    let work = async {
        let _ = s.write_all(line).await;
        let _ = s.flush().await;
        let _ = s.close().await;
        let mut sink = [0u8; 4096];
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    work.or(async {
        Timer::after(REJECT_LINGER).await;
    })
    .await;
}

/// Turn a connection away with `line`. Plain TCP: the line goes out at once (it fits in
/// a fresh socket's send buffer), then FIN; the socket lingers briefly reading what the
/// client still sends (closing with unread input would reset the connection and could
/// destroy the line in flight), at most `MAX_REJECTING` at a time. Past that it is
/// closed as soon as the input already there is read. So every rejected client is told,
/// and rejected sockets hold at most `MAX_REJECTING` descriptors for `REJECT_LINGER`.
fn reject(sv: &Arc<Server>, stream: Async<TcpStream>, line: &'static [u8], ex: &Executor<'static>) {
    use std::io::{Read, Write};
    let Some(acc) = sv.tls.clone() else {
        let _ = stream.get_ref().write(line);
        let _ = stream.get_ref().shutdown(std::net::Shutdown::Write);
        if sv.rejecting.fetch_add(1, Ordering::AcqRel) < MAX_REJECTING {
            let sv = sv.clone();
            ex.spawn(async move {
                drain(stream).await;
                sv.rejecting.fetch_sub(1, Ordering::AcqRel);
            })
            .detach();
        } else {
            sv.rejecting.fetch_sub(1, Ordering::AcqRel);
            // What has arrived, up to 64 KiB: a client streaming input cannot hold the
            // accept loop here.
            let mut sink = [0u8; 4096];
            for _ in 0..16 {
                if !matches!(stream.get_ref().read(&mut sink), Ok(n) if n > 0) {
                    break;
                }
            }
        }
        return;
    };
    if sv.rejecting.fetch_add(1, Ordering::AcqRel) >= MAX_REJECTING_TLS {
        sv.rejecting.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let sv = sv.clone();
    ex.spawn(async move {
        let hs = async { acc.accept(stream).await.ok() }
            .or(async {
                Timer::after(REJECT_LINGER).await;
                None
            })
            .await;
        if let Some(s) = hs {
            say_and_close(s, line).await;
        }
        sv.rejecting.fetch_sub(1, Ordering::AcqRel);
    })
    .detach();
}

/// Read and drop input until the peer closes, for at most `REJECT_LINGER`.
async fn drain<S: AsyncRead + Unpin>(mut s: S) {
    let mut sink = [0u8; 512];
    async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    }
    .or(async {
        Timer::after(REJECT_LINGER).await;
    })
    .await;
}

async fn serve(stream: Async<TcpStream>, peer: SocketAddr, sv: &Arc<Server>, accepted_at: Instant) {
    match &sv.tls {
        None => run(stream, peer, sv, accepted_at).await,
        Some(acc) => {
            let hs = async { Some(acc.accept(stream).await) }
                .or(async {
                    Timer::after(TLS_HANDSHAKE_TIMEOUT).await;
                    None
                })
                .await;
            match hs {
                Some(Ok(s)) => run(s, peer, sv, accepted_at).await,
                Some(Err(e)) => {
                    sv.metrics.tls_handshake_failures.inc();
                    log(Level::Debug, format_args!("TLS handshake with {peer}: {e}"));
                }
                None => {
                    sv.metrics.tls_handshake_failures.inc();
                    log(
                        Level::Debug,
                        format_args!("TLS handshake with {peer} timed out"),
                    );
                }
            }
        }
    }
}

/// One connection, plain or TLS.
async fn run<S>(stream: S, peer: SocketAddr, sv: &Arc<Server>, accepted_at: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // With auth on, wait for one of this address's AUTH slots (see `Server::auth_slots`),
    // within the time the client has for its AUTH line anyway.
    let mut auth_slot = None;
    if sv.auth {
        let slots = {
            let mut map = sv.auth_slots.lock().expect("auth slots lock");
            if map.len() >= LIMITER_ADDRESSES_MAX {
                // Forget addresses with no connection waiting or checking.
                map.retain(|_, sem| Arc::strong_count(sem) > 1);
            }
            map.entry(peer.ip())
                .or_insert_with(|| Arc::new(smol::lock::Semaphore::new(sv.auth_concurrency)))
                .clone()
        };
        let deadline = sv.auth_timeout.map(|d| accepted_at + d);
        let got = async { Some(slots.acquire_arc().await) }
            .or(async {
                match deadline {
                    Some(at) => Timer::at(at).await,
                    None => std::future::pending().await,
                };
                None
            })
            .await;
        let Some(slot) = got else {
            sv.metrics.auth_throttled.inc();
            return say_and_close(stream, THROTTLED).await;
        };
        auth_slot = Some(slot);
    }
    // The check is counted as a failure before it runs, and refunded if it succeeds:
    // concurrent checks can never outrun the throttle.
    if sv.auth
        && !sv
            .limiter
            .lock()
            .expect("limiter lock")
            .reserve(peer.ip(), Instant::now())
    {
        sv.metrics.auth_throttled.inc();
        log(
            Level::Info,
            format_args!("{peer}: turned away, too many failed AUTH attempts"),
        );
        return say_and_close(stream, THROTTLED).await;
    }
    let id = sv.next_id.fetch_add(1, Ordering::Relaxed);
    let (out_tx, out_rx) = channel::unbounded();
    let (wake_tx, wake_rx) = channel::bounded(1);
    let st = Arc::new(ConnState {
        unsent: AtomicUsize::new(0),
        consumed: AtomicU64::new(0),
        wake: wake_tx,
        lines: Mutex::new(VecDeque::new()),
        auth_token_out: std::sync::atomic::AtomicBool::new(sv.auth),
    });
    let sink = NetSink {
        out: out_tx,
        st: st.clone(),
        reply_burst: sv.output_window,
    };
    if sv.engine.send(Input::Open(id, Box::new(sink))).is_err() {
        return;
    }
    // Closed by whichever half ends the connection first.
    let (stop_tx, stop_rx) = channel::bounded::<()>(1);
    let (r, w) = smol::io::split(stream);
    let reader = read_half(id, r, &st, wake_rx, &stop_tx, &stop_rx, sv, accepted_at);
    let writer = write_half(id, w, out_rx, &st, &stop_tx, &stop_rx, peer, sv, auth_slot);
    let (r, clean) = smol::future::zip(reader, writer).await;
    // No AUTH was checked (a silent or stalled client, a non-AUTH first line): only a
    // failed check spends a token, so idle sockets cannot lock out their address.
    if st.auth_token_out.swap(false, Ordering::Relaxed) {
        sv.limiter
            .lock()
            .expect("limiter lock")
            .refund(peer.ip(), Instant::now());
    }
    if clean {
        // Our side is closed. Read and drop what the client still sends until it closes
        // too (briefly): closing a socket with unread input resets it, and a reset can
        // destroy replies the client has not read yet.
        drain(r).await;
    }
}

enum Wait {
    Go,
    Stop,
}

#[allow(clippy::too_many_arguments)]
async fn read_half<R: AsyncRead + Unpin>(
    id: u64,
    mut r: R,
    st: &ConnState,
    wake: Receiver<()>,
    stop_tx: &Sender<()>,
    stop: &Receiver<()>,
    sv: &Server,
    accepted_at: Instant,
) -> R {
    enum Got {
        Read(std::io::Result<usize>),
        Stop,
        Idle,
        Late,
    }
    let mut buf = vec![0u8; READ_BYTES];
    let mut sent = 0u64;
    let mut lines = LineCounter { in_line: false };
    // Deadlines that bytes arriving do not push back (a client sending one byte a second
    // is never idle): the first statement line with auth on, and every line once begun.
    let mut first_line_by = if sv.auth {
        sv.auth_timeout.map(|d| accepted_at + d)
    } else {
        None
    };
    let mut line_since: Option<Instant> = None;
    let stopped = || async {
        let _ = stop.recv().await;
    };
    loop {
        // Backpressure: read nothing more while the engine or the client is behind.
        loop {
            let in_flight = sent.saturating_sub(st.consumed.load(Ordering::Acquire));
            let unsent = st.unsent.load(Ordering::Acquire);
            if in_flight < sv.input_window && unsent < sv.output_window {
                break;
            }
            let w = async {
                let _ = wake.recv().await;
                Wait::Go
            }
            .or(async {
                stopped().await;
                Wait::Stop
            })
            .or(async {
                sv.until_shutdown().await;
                Wait::Stop
            })
            .await;
            if let Wait::Stop = w {
                return r;
            }
            // The wait was the server's, not the client's: a line it was sending starts
            // its clock again.
            if line_since.is_some() {
                line_since = Some(Instant::now());
            }
        }
        let line_by = match (line_since, sv.line_timeout) {
            (Some(t), Some(d)) => Some(t + d),
            _ => None,
        };
        let late_at = match (first_line_by, line_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let got = async { Got::Read(r.read(&mut buf).await) }
            .or(async {
                stopped().await;
                Got::Stop
            })
            .or(async {
                sv.until_shutdown().await;
                Got::Stop
            })
            .or(async {
                match sv.idle_timeout {
                    Some(d) => Timer::after(d).await,
                    None => std::future::pending().await,
                };
                Got::Idle
            })
            .or(async {
                match late_at {
                    Some(t) => Timer::at(t).await,
                    None => std::future::pending().await,
                };
                Got::Late
            })
            .await;
        match got {
            Got::Late => {
                sv.metrics.deadline_closed.inc();
                let what = if first_line_by.is_some_and(|t| t <= Instant::now()) {
                    "no AUTH line"
                } else {
                    "a line left unfinished"
                };
                log(
                    Level::Debug,
                    format_args!("connection {id}: {what} past its deadline, closed"),
                );
                let _ = sv.engine.send(Input::Event(Event::Closed(id)));
                stop_tx.close();
                return r;
            }
            // On shutdown the engine drains the connection: it answers what it has
            // and closes it, and the writer sends that out.
            Got::Stop => return r,
            Got::Idle => {
                // Not idle while a statement is being answered or replies go out.
                if st.outstanding() || st.unsent.load(Ordering::Acquire) > 0 {
                    continue;
                }
                sv.metrics.idle_closed.inc();
                log(Level::Debug, format_args!("connection {id}: idle, closed"));
                let _ = sv.engine.send(Input::Event(Event::Closed(id)));
                stop_tx.close();
                return r;
            }
            Got::Read(Ok(0)) => {
                // A clean end of input may be a half-close: the client still reads
                // replies, so the engine answers everything before it closes.
                if !sv.stopping() {
                    let _ = sv.engine.send(Input::Event(Event::Eof(id)));
                }
                return r;
            }
            Got::Read(Err(_)) => {
                let _ = sv.engine.send(Input::Event(Event::Closed(id)));
                stop_tx.close();
                return r;
            }
            Got::Read(Ok(n)) => {
                let k = lines.count(&buf[..n]);
                let now = Instant::now();
                if k > 0 {
                    st.lines.lock().expect("lines lock").push_back((k, now));
                    first_line_by = None;
                }
                // Any byte after the last newline is a line begun (spaces too).
                match buf[..n].iter().rposition(|&b| b == b'\n') {
                    Some(p) if p + 1 == n => line_since = None,
                    Some(_) => line_since = Some(now),
                    None => {
                        line_since.get_or_insert(now);
                    }
                }
                sent += n as u64;
                if sv
                    .engine
                    .send(Input::Event(Event::Bytes(id, buf[..n].to_vec())))
                    .is_err()
                {
                    return r;
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_half<W: AsyncWrite + Unpin>(
    id: u64,
    mut w: W,
    out: Receiver<Out>,
    st: &ConnState,
    stop_tx: &Sender<()>,
    stop: &Receiver<()>,
    peer: SocketAddr,
    sv: &Server,
    // Held until the AUTH reply is counted.
    mut auth_slot: Option<smol::lock::SemaphoreGuardArc>,
) -> bool {
    // With auth on, the first reply line answers the AUTH line.
    let mut first_reply = sv.auth;
    let mut buf: Vec<u8> = Vec::new();
    let clean = loop {
        let msg = async { out.recv().await.ok() }
            .or(async {
                let _ = stop.recv().await;
                None
            })
            .await;
        // The engine dropped the connection, or the reader gave up on it.
        let Some(msg) = msg else { break false };
        let mut close = false;
        let mut resume = false;
        buf.clear();
        match msg {
            Out::Bytes(b, held) => {
                buf = b;
                resume = held;
            }
            Out::Close => close = true,
        }
        while !close && buf.len() < WRITE_COALESCE_BYTES {
            match out.try_recv() {
                Ok(Out::Bytes(b, held)) => {
                    buf.extend_from_slice(&b);
                    resume |= held;
                }
                Ok(Out::Close) => close = true,
                Err(_) => break,
            }
        }
        if first_reply && !buf.is_empty() {
            first_reply = false;
            // The check's token was taken when it started: a failed AUTH spends it,
            // anything else gives it back (a good AUTH now, others when they close).
            if buf.starts_with(b"ERR authentication failed") {
                st.auth_token_out.store(false, Ordering::Relaxed);
            } else if buf.starts_with(b"OK") && st.auth_token_out.swap(false, Ordering::Relaxed) {
                sv.limiter
                    .lock()
                    .expect("limiter lock")
                    .refund(peer.ip(), Instant::now());
            }
            // Counted: the next connection from this address may have its AUTH checked.
            drop(auth_slot.take());
        }
        st.answered(buf.iter().filter(|&&b| b == b'\n').count(), &sv.metrics);
        let n = buf.len();
        let wrote = async { Some(w.write_all(&buf).await.is_ok()) }
            .or(async {
                match sv.idle_timeout {
                    // A client that reads nothing for this long is gone.
                    Some(d) => Timer::after(d).await,
                    None => std::future::pending().await,
                };
                None
            })
            .await;
        st.unsent.fetch_sub(n, Ordering::AcqRel);
        let _ = st.wake.try_send(());
        match wrote {
            Some(true) => {
                if resume {
                    let _ = sv.engine.send(Input::Event(Event::Resume(id)));
                }
            }
            Some(false) => break false,
            None => {
                sv.metrics.idle_closed.inc();
                log(
                    Level::Debug,
                    format_args!("connection {id}: client stopped reading, closed"),
                );
                break false;
            }
        }
        if close {
            break true;
        }
    };
    if clean {
        let _ = async {
            let _ = w.flush().await;
            let _ = w.close().await;
        }
        .or(async {
            Timer::after(REJECT_LINGER).await;
        })
        .await;
    } else {
        let _ = sv.engine.send(Input::Event(Event::Closed(id)));
    }
    stop_tx.close();
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_the_burst_and_refills() {
        let mut l = Limiter::new(3, Duration::from_secs(10));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!l.blocked(ip, t0));
            l.failure(ip, t0);
        }
        assert!(l.blocked(ip, t0));
        assert!(!l.blocked(other, t0));
        assert!(l.blocked(ip, t0 + Duration::from_secs(9)));
        assert!(!l.blocked(ip, t0 + Duration::from_secs(11)));
    }

    #[test]
    fn addresses_are_counted_per_ipv4_address_and_ipv6_slash_64() {
        let k = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(k("10.0.0.1"), k("::ffff:10.0.0.1"));
        assert_ne!(k("10.0.0.1"), k("10.0.0.2"));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }

    #[test]
    fn line_counter_skips_blank_lines_across_reads() {
        let mut c = LineCounter { in_line: false };
        assert_eq!(c.count(b"AT LENS x 1\n\r\n  \nAT LE"), 1);
        assert_eq!(c.count(b"NS x 2\n\n"), 1);
        assert_eq!(c.count(b"\n"), 0);
    }
}
