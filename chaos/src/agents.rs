//! The outside A2A agents a run drives: one `tests/agents/a2a_agent.py` server (the real a2a-sdk
//! stack, started through the test kit's [`A2aAgent`]) per A2A agent of the roster, on a loopback port
//! of its own that the roster's `endpoint` names. The harness SIGKILLs them and starts them again on
//! the same port; a start runs on a blocking thread (it takes about a second) while the harness goes
//! on, and is noticed by [`AgentServer::poll`].
//!
//! The process agents need nothing here: every node starts its own `process_agent.py` children.

use genesis_testkit::A2aAgent;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often a start is tried before the run gives up: the port may be taken for a moment (by a
/// client's ephemeral port, say) right after a kill.
const START_TRIES: u32 = 5;

/// The test kit's python with a2a-sdk (it makes the virtualenv on first use, which can take half a
/// minute). A failure names what is missing (e.g. `python3-venv`).
pub async fn venv_python() -> anyhow::Result<PathBuf> {
    let made = tokio::task::spawn_blocking(|| {
        std::panic::catch_unwind(|| genesis_testkit::venv_python().to_path_buf()).map_err(panic_text)
    });
    match made.await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => anyhow::bail!("cannot make the test agents' virtualenv (tests/agents/setup-venv.sh): {e}"),
        Err(e) => anyhow::bail!("making the test agents' virtualenv: {e}"),
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Start the agent on `port`, trying again a few times if it does not come up (the test kit panics
/// with the agent's log then; the panic is turned into the error).
fn start_on(port: u16) -> Result<A2aAgent, String> {
    let mut last = String::new();
    for n in 1..=START_TRIES {
        match std::panic::catch_unwind(AssertUnwindSafe(|| A2aAgent::builder().port(port).start())) {
            Ok(agent) => return Ok(agent),
            Err(p) => last = panic_text(p),
        }
        // Back off before the next try (the port's holder needs a moment to let go).
        std::thread::sleep(Duration::from_millis(200 * u64::from(n)));
    }
    Err(format!("the A2A agent did not start on port {port} after {START_TRIES} tries: {last}"))
}

/// One A2A agent's server.
pub struct AgentServer {
    /// The roster agent it serves.
    pub name: String,
    pub port: u16,
    running: Option<A2aAgent>,
    starting: Option<JoinHandle<Result<A2aAgent, String>>>,
    /// When to start it again after a kill.
    pub restart_at: Option<Instant>,
    pub starts: u32,
    log_dir: PathBuf,
}

impl AgentServer {
    pub fn new(name: &str, port: u16, log_dir: &Path) -> AgentServer {
        AgentServer {
            name: name.to_string(),
            port,
            running: None,
            starting: None,
            restart_at: None,
            starts: 0,
            log_dir: log_dir.to_path_buf(),
        }
    }

    /// Start it in the background (see [`AgentServer::poll`]).
    pub fn begin_start(&mut self) {
        if self.starting.is_none() && self.running.is_none() {
            self.starts += 1;
            let port = self.port;
            self.starting = Some(tokio::task::spawn_blocking(move || start_on(port)));
        }
    }

    /// `Ok(true)` once when a start in the background has finished (the agent printed READY).
    pub async fn poll(&mut self) -> anyhow::Result<bool> {
        if !self.starting.as_ref().is_some_and(|h| h.is_finished()) {
            return Ok(false);
        }
        self.finish_start().await.map(|()| true)
    }

    /// Wait for a start in the background to finish.
    pub async fn finish_start(&mut self) -> anyhow::Result<()> {
        let Some(h) = self.starting.take() else { return Ok(()) };
        match h.await {
            Ok(Ok(agent)) => {
                self.running = Some(agent);
                Ok(())
            }
            Ok(Err(e)) => anyhow::bail!("agent {}: {e}", self.name),
            Err(e) => anyhow::bail!("agent {}: starting it failed: {e}", self.name),
        }
    }

    pub fn is_up(&self) -> bool {
        self.running.is_some()
    }

    pub fn is_starting(&self) -> bool {
        self.starting.is_some()
    }

    /// SIGKILL the server (its log is kept as `<log_dir>/<name>.<n>.log`).
    pub fn kill(&mut self) {
        if let Some(mut agent) = self.running.take() {
            agent.kill();
            self.keep_log(&agent);
        }
    }

    fn keep_log(&self, agent: &A2aAgent) {
        let _ = std::fs::write(self.log_dir.join(format!("{}.{}.log", self.name, self.starts)), agent.log());
    }
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        if let Some(agent) = self.running.take() {
            self.keep_log(&agent);
        }
    }
}
