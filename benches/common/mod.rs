//! What both benchmarks share: a private `redis-server` on a free loopback port in a temporary
//! directory, with persistence off (the benches measure the runtime and Redis's command work, not
//! fsync). Never the shared Redis on 6379.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--protected-mode", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed and on PATH");
        let server = RedisServer { port, child, _dir: dir };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let ping = redis::Client::open(server.url().as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if ping.is_ok() {
                return server;
            }
            assert!(Instant::now() < end, "redis-server did not accept connections within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `12345.6` → `"12,346"`.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub struct Row {
    pub name: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
}

pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>, target: &str, met: Option<bool>) {
        let row = Row { name: name.into(), value: value.into(), target: target.into(), met };
        eprintln!("  {} = {}", row.name, row.value);
        self.rows.push(row);
    }

    pub fn print(&self) {
        let w0 = self.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(0).max(8);
        let w1 = self.rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(0).max(6);
        let w2 = self.rows.iter().map(|r| r.target.chars().count()).max().unwrap_or(0).max(6);
        println!();
        println!("{:<w0$}  {:>w1$}  {:<w2$}  met", "scenario", "result", "target");
        println!("{}", "-".repeat(w0 + w1 + w2 + 9));
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!("{:<w0$}  {:>w1$}  {:<w2$}  {met}", r.name, r.value, r.target);
        }
    }
}
