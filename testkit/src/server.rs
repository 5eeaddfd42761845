//! One redis-server (or redis-sentinel) child process, with its own data directory.
//!
//! Start-up is where tests get flaky, so it is strict: a server only counts as
//! started when it answers PING *and* reports our child's pid, so a server another
//! test started on the same port can never be mistaken for ours; a lost port race
//! ("Address already in use" in the log) is retried on a new port; anything else
//! panics with the server's log.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::{FromRedisValue, RedisResult};
use tempfile::TempDir;

use crate::builder::{RedisBuilder, Tls};
use crate::ports;
use crate::tls::{generate_tls, TlsFiles};
use crate::wait::poll_until;

/// How long a server may take to answer after being spawned (AOF replay included).
const READY_DEADLINE: Duration = Duration::from_secs(20);
/// How many ports to try before concluding something other than a race is wrong.
const PORT_ATTEMPTS: usize = 20;
/// Timeout of probe connections: a stopped server must not hang a poll loop.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

const CONF_FILE: &str = "redis.conf";
const LOG_FILE: &str = "redis.log";
const OUTPUT_FILE: &str = "redis.stdout";

/// A Redis server for one test; killed on drop, its directory removed with it.
pub struct RedisServer {
    spec: RedisBuilder,
    dir: TempDir,
    port: u16,
    tls_files: Option<TlsFiles>,
    /// Behind a mutex so that `is_running(&self)` can reap the child, and so the
    /// server stays `Sync` and can be shared with spawned tasks.
    child: Mutex<Option<Child>>,
}

enum Outcome {
    Ready,
    PortTaken,
    Exited,
}

impl RedisServer {
    /// A standalone server with AOF (fsync always), no TLS and no password.
    pub fn start() -> RedisServer {
        RedisServer::builder().start()
    }

    pub fn builder() -> RedisBuilder {
        RedisBuilder::default()
    }

    pub(crate) fn launch(spec: RedisBuilder) -> RedisServer {
        assert!(
            !(spec.tls != Tls::Off && (spec.sentinel || spec.cluster_bus)),
            "genesis-testkit supports TLS on standalone servers only"
        );
        let dir = tempfile::Builder::new().prefix("genesis-redis-").tempdir().expect("creating a Redis data tempdir");
        let tls_files = (spec.tls != Tls::Off).then(|| generate_tls(&dir.path().join("tls")));
        let mut server = RedisServer { spec, dir, port: 0, tls_files, child: Mutex::new(None) };
        if let Some(port) = server.spec.port {
            server.port = port;
            server.write_config();
            match server.spawn_and_wait() {
                Outcome::Ready => return server.with_slots(),
                _ => panic!("redis-server could not take port {port}; log:\n{}", server.log_tail()),
            }
        }
        for _ in 0..PORT_ATTEMPTS {
            server.port = ports::candidate(server.spec.cluster_bus);
            server.write_config();
            if let Outcome::Ready = server.spawn_and_wait() {
                return server.with_slots();
            }
        }
        panic!("redis-server lost the port race {PORT_ATTEMPTS} times in a row; log:\n{}", server.log_tail());
    }

    /// For a single-node cluster: assign every slot and wait until the cluster says ok.
    fn with_slots(self) -> RedisServer {
        if self.spec.all_slots {
            // Already assigned after a restart (nodes.conf in the data directory): that error is fine.
            let _ = self.query::<()>(redis::cmd("CLUSTER").arg("ADDSLOTSRANGE").arg(0).arg(16383));
            crate::wait::wait_blocking(READY_DEADLINE, "the one-node cluster is up", || {
                let info: String = self.query(redis::cmd("CLUSTER").arg("INFO")).ok()?;
                info.contains("cluster_state:ok").then_some(())
            });
        }
        self
    }

    /// A plain synchronous connection (not for TLS servers), for tests that inspect keys.
    pub fn conn(&self) -> redis::Connection {
        self.connection().unwrap_or_else(|e| panic!("connecting to redis-server on port {}: {e}", self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL without credentials: `redis://127.0.0.1:PORT/` or `rediss://…` for TLS.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/", self.scheme(), self.port)
    }

    /// The URL with the ACL user's credentials, or the `requirepass` password for the
    /// default user (`:password@`); same as [`url`](Self::url) when neither is set.
    pub fn url_with_auth(&self) -> String {
        let credentials = match (&self.spec.acl_user, &self.spec.password) {
            (Some((user, password)), _) => format!("{}:{}@", percent_encode(user), percent_encode(password)),
            (None, Some(password)) => format!(":{}@", percent_encode(password)),
            (None, None) => String::new(),
        };
        format!("{}://{credentials}127.0.0.1:{}/", self.scheme(), self.port)
    }

    /// The server's data directory (config, log, AOF, nodes.conf, TLS files).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls_files.as_ref()
    }

    /// The child's pid while it runs, e.g. to SIGSTOP it in a chaos test.
    pub fn pid(&self) -> Option<u32> {
        self.is_running().then(|| self.child().as_ref().map(Child::id)).flatten()
    }

    /// SIGKILL, and wait until the process is gone: a crash, not a shutdown, so only
    /// what was fsynced survives.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child().take() {
            // An error here only means it already exited; `wait` reaps it either way.
            let _ = child.kill();
            child.wait().expect("waiting for a killed redis-server");
        }
    }

    /// Kills the server if it still runs, then starts it again on the same port with
    /// the same directory, so the AOF (and nodes.conf, and whatever Sentinel wrote
    /// into the config) is kept.
    pub fn restart(&mut self) {
        self.kill();
        self.start_on_same_port();
    }

    /// Like [`restart`](Self::restart), but the data files (AOF, RDB) are removed
    /// first, so the server comes back empty, as after a lost disk. Config, log and
    /// nodes.conf are kept so a cluster node keeps its identity and slots.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.remove_data_files();
        self.start_on_same_port();
    }

    /// Runs `redis-cli` against this server (TLS and credentials filled in) and returns
    /// its trimmed stdout; panics with stderr if the command or its reply failed.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|e| panic!("redis-cli {args:?} against port {} failed: {e}", self.port))
    }

    /// [`cli`](Self::cli) for commands expected to fail: `Err` holds stderr (and
    /// stdout) when redis-cli exits non-zero, which `-e` makes it do on error replies.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let output = self.cli_command().args(args).output().expect("running redis-cli (is it installed?)");
        let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!("{} {stdout}", String::from_utf8_lossy(&output.stderr).trim()))
        }
    }

    /// A `redis-cli` command with host, port, TLS files and credentials set, for
    /// callers that need options `cli` doesn't give (`-c`, `--pipe`, …).
    pub fn cli_command(&self) -> Command {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-e", "--no-auth-warning"]);
        if let Some(files) = &self.tls_files {
            cmd.arg("--tls").arg("--cacert").arg(&files.ca_cert);
            if self.spec.tls == Tls::Mutual {
                cmd.arg("--cert").arg(&files.client_cert).arg("--key").arg(&files.client_key);
            }
        }
        match (&self.spec.acl_user, &self.spec.password) {
            (Some((user, password)), _) => {
                cmd.args(["--user", user, "-a", password]);
            }
            (None, Some(password)) => {
                cmd.args(["-a", password]);
            }
            (None, None) => {}
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn is_running(&self) -> bool {
        let mut child = self.child();
        match child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) => {
                *child = None;
                false
            }
            Some(Err(e)) => panic!("checking whether redis-server on port {} runs: {e}", self.port),
            None => false,
        }
    }

    /// A sync connection (plain TCP only), with timeouts so a dead server fails a
    /// poll instead of hanging it.
    pub(crate) fn connection(&self) -> RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url_with_auth())?;
        let con = client.get_connection_with_timeout(PROBE_TIMEOUT)?;
        con.set_read_timeout(Some(PROBE_TIMEOUT))?;
        con.set_write_timeout(Some(PROBE_TIMEOUT))?;
        Ok(con)
    }

    pub(crate) fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        cmd.query(&mut self.connection()?)
    }

    /// The server's log, for panic messages that explain a failure.
    pub(crate) fn log_tail(&self) -> String {
        let mut text = read_from(&self.dir.path().join(OUTPUT_FILE), 0);
        text.push_str(&read_from(&self.dir.path().join(LOG_FILE), 0));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn scheme(&self) -> &'static str {
        if self.tls_files.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding the lock leaves the `Option<Child>` consistent.
        self.child.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_config(&self) {
        let dir = self.dir.path();
        let text = self.spec.render_config(self.port, dir, &dir.join(LOG_FILE), self.tls_files.as_ref());
        let path = dir.join(CONF_FILE);
        fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Restarts keep the port because clients, replicas, sentinels and cluster peers
    /// know the server by it; a stranger may hold it for a moment, so retry.
    fn start_on_same_port(&mut self) {
        for _ in 0..PORT_ATTEMPTS {
            if let Outcome::Ready = self.spawn_and_wait() {
                return;
            }
            // Back-off before retrying the same port, not synchronisation.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("port {} stayed taken while restarting redis-server; log:\n{}", self.port, self.log_tail());
    }

    fn spawn_and_wait(&mut self) -> Outcome {
        let dir = self.dir.path().to_path_buf();
        let log = dir.join(LOG_FILE);
        let output_path = dir.join(OUTPUT_FILE);
        let log_offset = file_len(&log);
        let output_offset = file_len(&output_path);
        let output = append(&output_path);
        let mut cmd = Command::new(if self.spec.sentinel { "redis-sentinel" } else { "redis-server" });
        cmd.arg(dir.join(CONF_FILE))
            .args(&self.spec.args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("duplicating the redis output file handle"))
            .stderr(output);
        let child = cmd.spawn().expect("spawning redis-server (is it installed?)");
        let pid = child.id();
        *self.child() = Some(child);

        let new_output = || {
            let mut text = read_from(&output_path, output_offset);
            text.push_str(&read_from(&log, log_offset));
            text
        };
        let port_taken = |text: &str| text.contains("Address already in use");
        let outcome = poll_until(READY_DEADLINE, &mut || {
            if !self.is_running() {
                return Some(if port_taken(&new_output()) { Outcome::PortTaken } else { Outcome::Exited });
            }
            if port_taken(&new_output()) {
                return Some(Outcome::PortTaken);
            }
            self.answers_as(pid).then_some(Outcome::Ready)
        });
        match outcome {
            Some(Outcome::PortTaken) => {
                self.kill();
                Outcome::PortTaken
            }
            Some(Outcome::Ready) => Outcome::Ready,
            Some(Outcome::Exited) => {
                panic!("redis-server on port {} exited during start-up; output:\n{}", self.port, new_output())
            }
            None => {
                self.kill();
                panic!(
                    "redis-server on port {} not ready after {READY_DEADLINE:?}; output:\n{}",
                    self.port,
                    new_output()
                )
            }
        }
    }

    /// True once the server answers PING and its INFO names `pid` as the process.
    fn answers_as(&self, pid: u32) -> bool {
        let expected = format!("process_id:{pid}");
        if self.tls_files.is_some() {
            self.try_cli(&["PING"]).is_ok_and(|reply| reply == "PONG")
                && self.try_cli(&["INFO", "server"]).is_ok_and(|info| info.lines().any(|l| l.trim() == expected))
        } else {
            let Ok(mut con) = self.connection() else { return false };
            redis::cmd("PING").query::<String>(&mut con).is_ok_and(|reply| reply == "PONG")
                && redis::cmd("INFO")
                    .arg("server")
                    .query::<String>(&mut con)
                    .is_ok_and(|info| info.lines().any(|l| l.trim() == expected))
        }
    }

    fn remove_data_files(&self) {
        let dir = self.dir.path();
        let aof_dir = dir.join("appendonlydir");
        if aof_dir.exists() {
            fs::remove_dir_all(&aof_dir).unwrap_or_else(|e| panic!("removing {}: {e}", aof_dir.display()));
        }
        let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("reading a data dir entry").path();
            let is_data = path.extension().is_some_and(|ext| ext == "rdb" || ext == "aof");
            if is_data && path.is_file() {
                fs::remove_file(&path).unwrap_or_else(|e| panic!("removing {}: {e}", path.display()));
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer").field("port", &self.port).field("dir", &self.dir.path()).finish_non_exhaustive()
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// The part of a file written after `offset`: only this start's messages count, not
/// those of an earlier run of the same server.
fn read_from(path: &Path, offset: u64) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(_) => String::new(),
    }
}

/// Credentials in URLs must not break the URL syntax.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
