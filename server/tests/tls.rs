//! TLS over real sockets with a rustls client: the self-signed certificate the server
//! writes into its data directory, and a certificate and key given as PEM files.

mod common;
use common::{start, temp_dir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn connect(addr: &str, ca_pem: &[u8]) -> BufReader<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    BufReader::new(rustls::StreamOwned::new(conn, tcp))
}

fn ask(s: &mut BufReader<Tls>, stmt: &str) -> String {
    s.get_mut()
        .write_all(format!("{stmt}\n").as_bytes())
        .unwrap();
    s.get_mut().flush().unwrap();
    let mut l = String::new();
    s.read_line(&mut l).unwrap();
    l.trim_end().to_string()
}

fn statements_over_tls(addr: &str, ca: &[u8]) {
    let mut s = connect(addr, ca);
    assert_eq!(ask(&mut s, "CREATE DATABASE d"), "OK");
    assert_eq!(ask(&mut s, "USE DATABASE d"), "OK");
    assert_eq!(ask(&mut s, "CREATE LENS temp float"), "OK");
    assert_eq!(
        ask(&mut s, "APPEND LENS temp 0 3600 18.5, 3600 7200 21.0"),
        "OK"
    );
    assert_eq!(
        ask(&mut s, "RANGE LENS temp 0 7200"),
        "RANGE 2; 0:3600:f18.5; 3600:7200:f21"
    );
    // Pipelined, over TLS.
    let mut text = String::new();
    for i in 0..500 {
        text += &format!("AT LENS temp {}\n", i * 10);
    }
    s.get_mut().write_all(text.as_bytes()).unwrap();
    for i in 0..500 {
        let mut l = String::new();
        s.read_line(&mut l).unwrap();
        let want = if i * 10 < 3600 {
            "VAL f18.5"
        } else {
            "VAL f21"
        };
        assert_eq!(l.trim_end(), want);
    }
    assert_eq!(ask(&mut s, "QUIT"), "OK BYE");
    let mut rest = Vec::new();
    // The server closes with close_notify: a clean end of stream.
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn self_signed_tls_handshake_and_statements() {
    let dir = temp_dir("tls");
    let data = dir.path();
    let server = start(&["--data-dir", &data, "--tls-self-signed"]);
    let ca = std::fs::read(dir.0.join("tls-self-signed.pem")).unwrap();
    statements_over_tls(&server.addr, &ca);
    // A plain-text client gets no reply from a TLS server.
    let mut plain = TcpStream::connect(&server.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain.write_all(b"SHOW DATABASES\n").unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"NAMES"), "{got:?}");
}

#[test]
fn tls_with_pem_files() {
    let dir = temp_dir("tls-pem");
    std::fs::create_dir_all(&dir.0).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let server = start(&[
        "--in-memory",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    statements_over_tls(&server.addr, ck.cert.pem().as_bytes());
}
