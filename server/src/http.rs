//! A minimal HTTP/1.1 endpoint on the metrics address: `GET /healthz` and
//! `GET /metrics`. One request per connection (`Connection: close`).

use crate::net::Server;
use crate::{log, Level};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Executor, Timer};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use tau_io::{Input, Snapshot};

const HEAD_BYTES_MAX: usize = 8 << 10;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a health check waits for the engine thread before calling it unhealthy.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP connections served at once; more are closed at once.
const HTTP_CONNECTIONS_MAX: usize = 64;

pub async fn serve(listener: Async<TcpListener>, sv: Arc<Server>, ex: Arc<Executor<'static>>) {
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let next = async { Some(listener.accept().await) }
            .or(async {
                let _ = sv.shutdown.recv().await;
                None
            })
            .await;
        let Some(accepted) = next else { break };
        let Ok((stream, _)) = accepted else {
            Timer::after(Duration::from_millis(50)).await;
            continue;
        };
        use std::sync::atomic::Ordering;
        if busy.fetch_add(1, Ordering::AcqRel) >= HTTP_CONNECTIONS_MAX {
            busy.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let (sv, busy) = (sv.clone(), busy.clone());
        ex.spawn(async move {
            let _ = handle(stream, &sv)
                .or(async {
                    Timer::after(REQUEST_TIMEOUT).await;
                    Ok(())
                })
                .await;
            busy.fetch_sub(1, Ordering::AcqRel);
        })
        .detach();
    }
}

/// Ask the engine thread for a snapshot; `None` if it does not answer in time.
pub async fn snapshot(sv: &Server) -> Option<Snapshot> {
    let (tx, rx) = smol::channel::bounded(1);
    let ask = Input::Snapshot(Box::new(move |s| {
        let _ = tx.try_send(s);
    }));
    sv.engine.send(ask).ok()?;
    async { rx.recv().await.ok() }
        .or(async {
            Timer::after(ENGINE_TIMEOUT).await;
            None
        })
        .await
}

async fn handle(mut s: Async<TcpStream>, sv: &Server) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > HEAD_BYTES_MAX {
            return respond(&mut s, 431, "text/plain", "request header too large\n").await;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut first = text.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/healthz") => {
            let (code, body) = if sv.shutdown.is_closed() {
                (503, "stopping\n".to_string())
            } else {
                match snapshot(sv).await {
                    None => (503, "engine not responding\n".to_string()),
                    Some(snap) => match snap.store.not_accepting {
                        None => (200, "ok\n".to_string()),
                        Some(why) => (503, format!("not accepting writes: {why}\n")),
                    },
                }
            };
            respond(&mut s, code, "text/plain", &body).await
        }
        ("GET", "/metrics") => match snapshot(sv).await {
            Some(snap) => {
                let body = sv.metrics.render(snap);
                respond(
                    &mut s,
                    200,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    &body,
                )
                .await
            }
            None => respond(&mut s, 503, "text/plain", "engine not responding\n").await,
        },
        ("GET", _) => respond(&mut s, 404, "text/plain", "not found\n").await,
        ("", _) => Ok(()),
        (m, _) => {
            log(Level::Debug, format_args!("http: {m} refused"));
            respond(&mut s, 405, "text/plain", "method not allowed\n").await
        }
    }
}

async fn respond(s: &mut Async<TcpStream>, code: u16, ty: &str, body: &str) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ty}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).await?;
    s.flush().await?;
    s.get_ref().shutdown(std::net::Shutdown::Write)
}
