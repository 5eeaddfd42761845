//! Runtime-level helpers of the integration tests (fast settings, agents, the binary as a child,
//! config files). Redis servers and condition waits come from the one test kit, `genesis-testkit`
//! (re-exported here): a real `redis-server` on a free loopback port, AOF always on. No fixed sleeps: every wait polls a condition until a deadline.
#![allow(dead_code)]
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod buses;

use genesis_actors::bus::{Bus, TaskRecord, TaskStatus};
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::policy::intensity::Intensity;
use genesis_actors::roster::{AgentSpec, Roster};
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::{TaskEnvelope, TopicName};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

// Not every test binary uses every item.
#[allow(unused_imports)]
pub use genesis_testkit::{eventually, free_port, wait_blocking, LoadingRedis, RedisServer};

pub fn topic(s: &str) -> TopicName {
    s.parse().expect("valid topic")
}

pub fn agent(name: &str, concurrency: usize, max_retries: u32) -> AgentSpec {
    AgentSpec {
        name: name.to_string(),
        topic: topic(name),
        concurrency,
        max_retries,
        retry_delay: Duration::from_millis(30),
        timeout: Duration::from_secs(10),
        executor: genesis_actors::roster::ExecutorSpec::Named("simulated".into()),
        rate: None,
        breaker: Default::default(),
        dlq: Default::default(),
    }
}

pub fn roster(agents: Vec<AgentSpec>) -> Roster {
    Roster { agents }
}

/// Settings that make tests fast: short blocks, heartbeats and backoffs.
pub fn fast_settings(node_id: &str) -> RuntimeSettings {
    let mut s = RuntimeSettings::defaults(node_id);
    s.bus.block = Duration::from_millis(200);
    s.bus.retry_poll = Duration::from_millis(20);
    s.bus.trim_interval = Duration::from_millis(200);
    s.bus.reconnect = Backoff::new(Duration::from_millis(20), Duration::from_millis(500), 2.0);
    s.liveness.heartbeat_interval = Duration::from_millis(200);
    s.liveness.heartbeat_ttl = Duration::from_millis(1000);
    s.liveness.reclaim_interval = Duration::from_millis(200);
    s.supervision.restart_backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(50), 2.0);
    s.supervision.agent = Intensity { max_restarts: 50, within: Duration::from_secs(10) };
    s.retry_backoff = Backoff::new(Duration::from_millis(30), Duration::from_millis(200), 2.0);
    s
}

pub const TTL: Duration = Duration::from_secs(3600);

pub async fn publish(bus: &Bus, topic_name: &str, payload: serde_json::Value) -> TaskEnvelope {
    let env = TaskEnvelope::new(topic(topic_name), tenant("tenant-test"), payload);
    bus.publish(&env, TTL).await.expect("publish");
    env
}

/// Wait until the task's record reaches a final status, and return it.
pub async fn final_record(bus: &Bus, env: &TaskEnvelope, deadline: Duration) -> TaskRecord {
    let id = env.task_id.to_string();
    eventually(deadline, &format!("task {id} reaches a final status"), || async {
        bus.task(&env.topic, &id).await.ok().flatten().filter(|r| r.status.is_final())
    })
    .await
}

pub fn status_of(r: &TaskRecord) -> TaskStatus {
    r.status
}

/// The shipped roster, absolute, so test configs in temp dirs can point at it.
/// A tenant id the test knows is valid.
pub fn tenant(t: &str) -> genesis_actors::task::TenantId {
    genesis_actors::task::TenantId::parse(t).expect("a valid tenant id")
}

pub fn shipped_roster() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/agents.toml")
}

/// The shipped workflow templates beside a test's genesis.toml (a node reads `<config dir>/workflows`).
pub fn copy_templates(dir: &std::path::Path) {
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/workflows");
    let to = dir.join("workflows");
    std::fs::create_dir_all(&to).expect("dir");
    for e in std::fs::read_dir(from).expect("templates") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
    }
}

/// Write a genesis.toml with fast test timings into `dir`, naming `roster`; returns its path.
pub fn write_test_config(dir: &std::path::Path, roster: &std::path::Path) -> PathBuf {
    write_test_config_with(dir, roster, None)
}

/// As [`write_test_config`], serving HTTP on `http_port` when given.
pub fn write_test_config_with(dir: &std::path::Path, roster: &std::path::Path, http_port: Option<u16>) -> PathBuf {
    let path = dir.join("genesis.toml");
    let http = http_port.map(|p| format!("127.0.0.1:{p}")).unwrap_or_default();
    let text = format!(
        r#"roster = "{}"
[node]
id = "test-node"
[bus]
block = "200ms"
retry_poll = "20ms"
trim_interval = "500ms"
reconnect_initial = "20ms"
reconnect_max = "500ms"
[supervision]
restart_backoff_initial = "1ms"
restart_backoff_max = "50ms"
[liveness]
heartbeat_interval = "200ms"
heartbeat_ttl = "1s"
reclaim_interval = "200ms"
[retry]
max_delay = "1s"
[executors.simulated]
steering = true

[http]
addr = "{http}"
"#,
        roster.display()
    );
    std::fs::write(&path, text).expect("write test config");
    path
}

/// Set `node.shutdown_grace` in a config written by [`write_test_config`].
pub fn set_grace(config: &std::path::Path, grace: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replacen("id = \"test-node\"", &format!("id = \"test-node\"\nshutdown_grace = \"{grace}\""), 1);
    std::fs::write(config, text).expect("config");
}

/// A `genesis serve` process.
pub struct Node {
    pub id: String,
    child: Child,
    pub log: PathBuf,
}

pub fn genesis_bin() -> &'static str {
    env!("CARGO_BIN_EXE_genesis")
}

impl Node {
    pub fn spawn(config: &std::path::Path, redis: &RedisServer, id: &str, log_dir: &std::path::Path) -> Node {
        let node = Node::start(config, Some(redis), id, log_dir);
        let mut conn = redis.conn();
        let key = format!("genesis:node:{id}");
        wait_blocking(Duration::from_secs(30), &format!("node {id} writes its heartbeat"), || {
            redis::cmd("EXISTS").arg(&key).query::<bool>(&mut conn).ok().filter(|e| *e)
        });
        node
    }

    /// Start `genesis serve`; on the in-process bus when `redis` is `None`. Does not wait for readiness.
    pub fn start(config: &std::path::Path, redis: Option<&RedisServer>, id: &str, log_dir: &std::path::Path) -> Node {
        Node::start_with_env(config, redis, id, log_dir, &[])
    }

    /// [`Node::start`] with extra environment variables.
    pub fn start_with_env(
        config: &std::path::Path,
        redis: Option<&RedisServer>,
        id: &str,
        log_dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Node {
        let log = log_dir.join(format!("{id}-{}.log", free_port()));
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let mut cmd = Command::new(genesis_bin());
        cmd.args(["serve", "--config"]).arg(config).args(["--node-id", id]);
        if let Some(r) = redis {
            cmd.args(["--redis-url", &r.url()]);
        }
        // A developer's own setting must not move the test's listener.
        cmd.env_remove("GENESIS_HTTP_ADDR").envs(env.iter().copied());
        let child = cmd
            .env("RUST_LOG", "info")
            .env_remove("GENESIS_REDIS_URL")
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("spawn genesis serve");
        Node { id: id.to_string(), child, log }
    }

    /// SIGKILL: no shutdown code runs, the heartbeat key is left to expire.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        wait_blocking(Duration::from_secs(30), "node exits after SIGTERM", || self.child.try_wait().ok().flatten())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Run the CLI with a config and Redis URL; returns (success, stdout, stderr).
pub fn cli(config: &std::path::Path, redis: &RedisServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(genesis_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("GENESIS_REDIS_URL", redis.url())
        .output()
        .expect("run genesis");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `genesis task get ID --json`, parsed; `None` while not found.
pub fn cli_task(config: &std::path::Path, redis: &RedisServer, id: &str) -> Option<serde_json::Value> {
    let (ok, out, _) = cli(config, redis, &["task", "get", id, "--json"]);
    if !ok {
        return None;
    }
    serde_json::from_str(out.trim()).ok()
}

/// The first-run admin key of a node on the embedded bus whose genesis.toml is in `dir` (the node
/// writes it to `admin.key` there at start: README, "Using it"); waits until it is written.
pub fn admin_key(dir: &std::path::Path) -> String {
    let path = dir.join("admin.key");
    wait_blocking(Duration::from_secs(30), "the node writes its admin key", || {
        std::fs::read_to_string(&path).ok().map(|k| k.trim().to_string()).filter(|k| k.starts_with("gk_"))
    })
}

/// `genesis apikey create` on Redis: a new key of `tenant` with `role` (`tenant` or `admin`).
pub fn create_key(config: &std::path::Path, redis: &RedisServer, tenant: &str, role: &str) -> String {
    let (ok, out, err) = cli(config, redis, &["apikey", "create", "--tenant", tenant, "--role", role]);
    assert!(ok, "apikey create: {err}");
    out.trim().to_string()
}

/// `genesis apikey create --print-config`: a key of `tenant` with `role`, and its `[[http.api_keys]]`
/// entry appended to `config` (for the embedded bus). Returns the key.
pub fn configure_key(config: &std::path::Path, tenant: &str, role: &str) -> String {
    let out = Command::new(genesis_bin())
        .args(["apikey", "create", "--print-config", "--json", "--tenant", tenant, "--role", role])
        .output()
        .expect("run genesis");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let entry = format!(
        "\n[[http.api_keys]]\ntenant = \"{}\"\nrole = \"{}\"\nkey_sha256 = \"{}\"\n",
        v["tenant"].as_str().expect("tenant"),
        v["role"].as_str().expect("role"),
        v["key_sha256"].as_str().expect("hash")
    );
    let mut text = std::fs::read_to_string(config).expect("config");
    text.push_str(&entry);
    std::fs::write(config, text).expect("config");
    v["key"].as_str().expect("key").to_string()
}

/// Add `lines` under `[http]` of a config written by [`write_test_config_with`].
pub fn set_http(config: &std::path::Path, lines: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replacen("[http]\n", &format!("[http]\n{lines}\n"), 1);
    std::fs::write(config, text).expect("config");
}
