//! The HTTP listener's limits (docs/OPERATIONS.md, "HTTP"): a client that never finishes its request
//! headers is disconnected after `http.header_read_timeout`, open connections are capped so a flood of
//! slow clients cannot exhaust the node's file descriptors, and the node keeps answering probes.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn slow_clients_are_cut_off_and_probes_keep_answering() {
    let dir = tempfile::tempdir().expect("dir");
    let http = support::free_port();
    let config = support::write_test_config_with(dir.path(), &support::shipped_roster(), Some(http));
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen("[http]\n", "[http]\nheader_read_timeout = \"1s\"\nmax_connections = 64\n", 1);
    std::fs::write(&config, text).expect("config");
    let log = std::fs::File::create(dir.path().join("node.log")).expect("log");
    let mut node = Command::new(support::genesis_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("GENESIS_REDIS_URL")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn genesis serve");
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let healthz =
        || client.get(format!("http://127.0.0.1:{http}/healthz")).send().ok().filter(|r| r.status().is_success());
    support::wait_blocking(Duration::from_secs(30), "the node answers /healthz", healthz);

    // 300 clients that send half a request line and then nothing.
    let mut slow: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", http)).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").ok()?;
            Some(s)
        })
        .collect();
    assert!(slow.len() >= 64, "could open the slow connections");
    // Probes get through once the cut-off frees connections (a second or two, not forever).
    let started = Instant::now();
    support::wait_blocking(Duration::from_secs(20), "/healthz answers despite 300 slow clients", healthz);
    eprintln!("probe answered {:?} after the flood", started.elapsed());
    // The first slow clients were disconnected by the server (read gives EOF or an error, not a hang).
    let first = &mut slow[0];
    first.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut buf = [0u8; 512];
    match first.read(&mut buf) {
        Ok(n) => assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"), "closed or 408"),
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the server never cut the slow client off: {e}"
        ),
    }
    drop(slow);
    // A slow request does not hold up shutdown.
    let _stuck =
        TcpStream::connect(("127.0.0.1", http)).and_then(|mut s| s.write_all(b"GET / HTTP/1.1\r\n").map(|_| s));
    let _ = Command::new("kill").args(["-TERM", &node.id().to_string()]).stdout(Stdio::null()).status();
    let status = support::wait_blocking(Duration::from_secs(20), "the node exits after SIGTERM", || {
        node.try_wait().ok().flatten()
    });
    assert!(status.success(), "clean exit: {status}");
}
