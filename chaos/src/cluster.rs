//! The processes a run drives: one `redis-server` (the test kit's: append-only file, fsync on every
//! write, so a SIGKILL loses nothing acknowledged) and `genesis serve` nodes. Every wait polls a condition until a deadline.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Poll `f` every 20 ms until it returns `Some`, or fail after `deadline` naming `what`.
pub async fn wait_for<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= end {
            bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PING once (connect timeout 1 s); `true` when Redis answers and has finished loading.
pub async fn ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else { return false };
    let attempt = async {
        let mut c = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut c).await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(_)))
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// The run's `redis-server`, from the one test kit (AOF with fsync on every write, a loopback port
/// of its own). Its blocking kill/restart run off the async workers.
pub struct RedisProc(genesis_testkit::RedisServer);

impl RedisProc {
    pub async fn start() -> anyhow::Result<RedisProc> {
        let server =
            tokio::task::spawn_blocking(genesis_testkit::RedisServer::start).await.context("start redis-server")?;
        Ok(RedisProc(server))
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    /// SIGKILL (no shutdown, no final write) and reap it.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Start again on the same port and data directory (it replays its append-only file); waits until
    /// it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.0.restart());
        Ok(())
    }
}

/// How to start a node.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub genesis_bin: PathBuf,
    pub config: PathBuf,
    pub redis_url: String,
    pub log_dir: PathBuf,
    pub rust_log: String,
}

/// A `genesis serve` process. Each start logs to `<log_dir>/<id>.<n>.log`.
pub struct NodeProc {
    pub id: String,
    child: Option<Child>,
    pub starts: u32,
    pub logs: Vec<PathBuf>,
    /// Its HTTP port (`--http-addr 127.0.0.1:<port>`, for `/metrics`); `None`: no HTTP.
    pub http_port: Option<u16>,
}

impl NodeProc {
    pub fn new(id: &str) -> NodeProc {
        NodeProc { id: id.to_string(), child: None, starts: 0, logs: Vec::new(), http_port: None }
    }

    /// A node that serves HTTP (`/metrics`) on this loopback port, the same on every start.
    pub fn with_http(id: &str, port: u16) -> NodeProc {
        let mut n = NodeProc::new(id);
        n.http_port = Some(port);
        n
    }

    /// Start (or start again) with this node id. Does not wait for readiness.
    pub fn start(&mut self, l: &Launcher) -> anyhow::Result<()> {
        self.starts += 1;
        let log = l.log_dir.join(format!("{}.{}.log", self.id, self.starts));
        let file = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = file.try_clone()?;
        let mut cmd = Command::new(&l.genesis_bin);
        cmd.args(["serve", "--config"]).arg(&l.config).args(["--node-id", &self.id, "--redis-url", &l.redis_url]);
        if let Some(port) = self.http_port {
            cmd.args(["--http-addr", &format!("127.0.0.1:{port}")]);
        }
        let child = cmd
            .env("RUST_LOG", &l.rust_log)
            .env_remove("GENESIS_REDIS_URL")
            .env_remove("GENESIS_CONFIG")
            .env_remove("GENESIS_NODE_ID")
            .env_remove("GENESIS_HTTP_ADDR")
            .stdout(file)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {} serve", l.genesis_bin.display()))?;
        self.child = Some(child);
        self.logs.push(log);
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: no shutdown code runs; its heartbeat key is left to expire.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The exit status if the process ended on its own (it is then no longer running).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())?;
        self.child = None;
        Some(status)
    }

    /// SIGTERM, then wait up to `deadline` for the exit status (SIGKILL after the deadline: `None`).
    pub async fn terminate(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let pid = self.child.as_ref()?.id();
        signal(pid, "-TERM");
        let child = &mut self.child;
        let status = wait_for(deadline, "node exit after SIGTERM", || {
            let s = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            async move { s }
        })
        .await
        .ok();
        if status.is_none() {
            self.kill();
        }
        self.child = None;
        status
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}
