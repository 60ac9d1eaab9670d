//! The client over TLS, against a test server that wraps the engine in rustls (ring) with
//! an rcgen self-signed certificate, as tau-server's --tls-self-signed does.

mod common;

use common::{scratch, serve_stream, stderr, stdout, tau};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tau_engine::driver::SyncDriver;
use tau_engine::Config;

/// A TLS server for localhost/127.0.0.1; returns its address and the certificate's PEM.
fn start_tls(name: &str) -> (SocketAddr, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = scratch(name).join("tls-self-signed.pem");
    std::fs::write(&pem, ck.cert.pem()).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(ck.cert.der().to_vec())], key)
        .unwrap();
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let driver = Arc::new(Mutex::new(SyncDriver::new(Config::default())));
    std::thread::spawn(move || {
        for (id, sock) in (1u64..).zip(listener.incoming()) {
            let Ok(sock) = sock else { continue };
            let (d, cfg) = (driver.clone(), cfg.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                    return;
                };
                let stream = rustls::StreamOwned::new(conn, sock);
                serve_stream(&d, id, stream, |s| {
                    s.conn.send_close_notify();
                    while s.conn.wants_write() {
                        if s.conn.write_tls(&mut s.sock).is_err() {
                            break;
                        }
                    }
                    let _ = s.sock.shutdown(std::net::Shutdown::Both);
                });
            });
        }
    });
    (addr, pem)
}

#[test]
fn statements_over_tls_with_the_server_certificate() {
    let (addr, pem) = start_tls("tls-ca");
    let o = tau(
        addr,
        &[
            "--tls-ca",
            pem.to_str().unwrap(),
            "-c",
            "CREATE DATABASE d",
            "-c",
            "USE DATABASE d",
            "-c",
            "CREATE LENS x int",
            "-c",
            "APPEND LENS x 0 10 1",
            "-c",
            "RANGE LENS x 0 10",
            "-c",
            "QUIT",
        ],
        "",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "OK\nOK\nOK\nOK\n start | end | value \n-------+-----+-------\n     0 |  10 |     1 \n(1 row)\nOK BYE\n"
    );
}

#[test]
fn a_large_pipelined_load_over_tls() {
    let (addr, pem) = start_tls("tls-load");
    let dir = scratch("tls-load-data");
    let csv = dir.join("x.csv");
    let text: String = (0..30_000)
        .map(|i| format!("{i},{},{i}\n", i + 1))
        .collect();
    std::fs::write(&csv, text).unwrap();
    let mut script = String::from("CREATE DATABASE d\nUSE DATABASE d\nCREATE LENS x int\n");
    script.push_str(&format!("\\load x {}\n", csv.display()));
    for i in 0..5_000 {
        script.push_str(&format!("AT LENS x {i}\n"));
    }
    script.push_str("REDUCE LENS x 0 30000 USING count\n");
    let o = tau(
        addr,
        &["--tls", "--tls-ca", pem.to_str().unwrap(), "--raw"],
        &script,
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3 + 1 + 5_000 + 1);
    assert_eq!(lines[3], "OK 30000 rows loaded into x (3 batches)");
    for i in 0..5_000 {
        assert_eq!(lines[4 + i], format!("VAL i{i}"));
    }
    assert_eq!(lines[5_004], "VAL i30000");
}

#[test]
fn insecure_skips_verification_and_a_wrong_ca_fails() {
    let (addr, _pem) = start_tls("tls-insecure");
    let o = tau(
        addr,
        &["--tls-insecure", "--raw", "-c", "SHOW DATABASES"],
        "",
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    assert_eq!(stdout(&o), "NAMES 0\n");

    // Another server's certificate is not this one's.
    let (_, other_pem) = start_tls("tls-other");
    let o = tau(
        addr,
        &[
            "--tls-ca",
            other_pem.to_str().unwrap(),
            "-c",
            "SHOW DATABASES",
        ],
        "",
        &[],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("certificate"), "{}", stderr(&o));

    // --tls alone says what it needs.
    let o = tau(addr, &["--tls", "-c", "SHOW DATABASES"], "", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--tls-ca"), "{}", stderr(&o));
}
