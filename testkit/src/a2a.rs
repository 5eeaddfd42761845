//! The real A2A 1.0 test agent (`tests/agents/a2a_agent.py`, on the official a2a-sdk) as a child
//! process: started on a port of its own, tied to the test process, killed on drop.
//!
//! The agent's life is tied to ours twice: its stdin is a pipe we hold and it runs with
//! `--exit-on-stdin-eof`, so it stops even if this process dies without running `Drop`; and `Drop`
//! kills it. What it received is at [`A2aAgent::events`] (its `/test/events`, described in
//! `tests/agents/README.md` §4).

use crate::python::{agents_dir, venv_python};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Start to `READY` takes about a second; allow for a loaded machine.
const READY_DEADLINE: Duration = Duration::from_secs(60);
const LOG_FILE: &str = "a2a_agent.log";

/// How to start the agent.
#[derive(Debug, Clone, Default)]
pub struct A2aAgentBuilder {
    streaming: bool,
    port: u16,
}

impl A2aAgentBuilder {
    /// Advertise `capabilities.streaming` and serve `SendStreamingMessage`.
    pub fn streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }

    /// Listen on this port (0, the default, lets the agent pick a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Start it and wait for its `READY <port>` line; panics with its log if it does not come.
    pub fn start(self) -> A2aAgent {
        let dir = tempfile::Builder::new().prefix("genesis-a2a-").tempdir().expect("creating the agent's tempdir");
        let log = dir.path().join(LOG_FILE);
        let err = std::fs::File::create(&log).expect("creating the agent's log file");
        let mut cmd = Command::new(venv_python());
        cmd.arg(agents_dir().join("a2a_agent.py"))
            .args(["--port", &self.port.to_string(), "--exit-on-stdin-eof"])
            .args(if self.streaming { &["--streaming"][..] } else { &[] })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err);
        let mut child = cmd.spawn().expect("spawning tests/agents/a2a_agent.py");
        let stdin = child.stdin.take().expect("the agent's stdin pipe");
        let stdout = child.stdout.take().expect("the agent's stdout pipe");
        let (tx, rx) = mpsc::channel();
        // Reads the READY line, then keeps draining stdout so the agent never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("READY ").and_then(|p| p.trim().parse::<u16>().ok()) {
                    let _ = tx.send(p);
                    break;
                }
            }
            for _ in lines {}
        });
        let mut agent = A2aAgent { child, _stdin: stdin, port: 0, dir, streaming: self.streaming };
        let started = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(port) => {
                    agent.port = port;
                    return agent;
                }
                Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < READY_DEADLINE => {
                    if let Ok(Some(status)) = agent.child.try_wait() {
                        panic!("a2a_agent.py exited ({status}) before READY; log:\n{}", agent.log());
                    }
                }
                Err(_) => panic!("a2a_agent.py printed no READY line within {READY_DEADLINE:?}; log:\n{}", agent.log()),
            }
        }
    }
}

/// A running test agent; killed when dropped.
pub struct A2aAgent {
    child: Child,
    /// Held open: the agent exits when it reads EOF here.
    _stdin: ChildStdin,
    port: u16,
    dir: TempDir,
    streaming: bool,
}

impl A2aAgent {
    /// A polling (non-streaming) agent on a free port.
    pub fn start() -> A2aAgent {
        A2aAgent::builder().start()
    }

    pub fn builder() -> A2aAgentBuilder {
        A2aAgentBuilder::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// The agent's base URL (its card is at `/.well-known/agent-card.json` under it): the value of
    /// an a2a agent's `endpoint`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its JSON-RPC endpoint, for tests that talk to it directly.
    pub fn rpc_url(&self) -> String {
        format!("{}/a2a/jsonrpc", self.url())
    }

    /// Everything the agent saw so far, oldest first (`GET /test/events`).
    pub async fn events(&self) -> Vec<serde_json::Value> {
        let url = format!("{}/test/events", self.url());
        let resp = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        resp.json().await.unwrap_or_else(|e| panic!("GET {url}: not a JSON array: {e}"))
    }

    /// The events of one `kind` (`send`, `get`, `cancel`, `canceled`).
    pub async fn events_of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events().await.into_iter().filter(|e| e["kind"] == kind).collect()
    }

    /// Forget the events seen so far (`POST /test/reset`).
    pub async fn reset(&self) {
        let url = format!("{}/test/reset", self.url());
        let ok = reqwest::Client::new().post(&url).send().await.and_then(|r| r.error_for_status());
        ok.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    }

    /// What the agent logged (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// SIGKILL it and wait until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for A2aAgent {
    fn drop(&mut self) {
        self.kill();
    }
}
