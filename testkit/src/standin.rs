//! A stand-in for the one Redis state a real server cannot be held in on demand: still loading its
//! data set (a real one leaves LOADING as soon as a small AOF is read).

use std::net::TcpListener;
use std::time::Duration;

/// A stand-in for a Redis that is still loading its data set: it completes the client's connection
/// handshake (`CLIENT SETINFO`) and answers every other command with `-LOADING`, until dropped.
pub struct LoadingRedis {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadingRedis {
    pub fn start() -> LoadingRedis {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                if let Ok((c, _)) = listener.accept() {
                    let _ = c.set_nonblocking(true);
                    conns.push(c);
                }
                for c in conns.iter_mut() {
                    let mut buf = [0u8; 4096];
                    if let Ok(n) = c.read(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        // One reply per command (each command is a RESP array starting with '*').
                        for cmd in text.split('*').filter(|p| !p.is_empty() && p.as_bytes()[0].is_ascii_digit()) {
                            let reply: &[u8] = if cmd.to_ascii_uppercase().contains("SETINFO") {
                                b"+OK\r\n"
                            } else {
                                b"-LOADING Redis is loading the dataset in memory\r\n"
                            };
                            let _ = c.write_all(reply);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        LoadingRedis { port, stop, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for LoadingRedis {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
