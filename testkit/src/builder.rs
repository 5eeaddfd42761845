//! What a test server should look like, rendered as a redis.conf.
//!
//! The configuration goes into a file (not only command-line flags) because Sentinel
//! requires a writable config file and rewrites it, and because `CONFIG REWRITE`
//! (which Sentinel sends to servers it reconfigures) needs one: a restarted server
//! must come back with what Sentinel told it, not with its original role.

use std::path::Path;

use crate::server::RedisServer;
use crate::tls::TlsFiles;

/// How much a server writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persistence {
    /// `appendonly yes`, `appendfsync always`: every acknowledged write survives a
    /// SIGKILL, which is what crash/restart tests assert on.
    #[default]
    AofAlways,
    /// No AOF and no RDB snapshots: for benchmarks, where fsync cost would dominate.
    None,
}

/// Whether a server speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tls {
    #[default]
    Off,
    /// TLS only (the plain port is disabled), clients need not present a certificate.
    On,
    /// TLS only, and clients must present a certificate signed by the test CA.
    Mutual,
}

/// Configures a [`RedisServer`] before it starts.
#[derive(Debug, Clone, Default)]
pub struct RedisBuilder {
    pub(crate) persistence: Persistence,
    pub(crate) tls: Tls,
    pub(crate) password: Option<String>,
    pub(crate) acl_user: Option<(String, String)>,
    pub(crate) args: Vec<String>,
    /// Extra redis.conf lines (replicaof, sentinel monitor, cluster settings).
    pub(crate) conf: Vec<String>,
    pub(crate) sentinel: bool,
    pub(crate) cluster_bus: bool,
    /// A port chosen by the caller (e.g. one a stand-in held before) instead of a fresh one.
    pub(crate) port: Option<u16>,
    /// One node that holds every slot itself (see [`RedisBuilder::single_node_cluster`]).
    pub(crate) all_slots: bool,
}

impl RedisBuilder {
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = persistence;
        self
    }

    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets `requirepass`, i.e. the `default` user's password.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    /// Adds an ACL user allowed everything. Unless [`password`](Self::password) is also
    /// set, the `default` user is switched off, so unauthenticated clients and wrong
    /// passwords are refused instead of silently falling back to `default`.
    pub fn acl_user(mut self, user: &str, password: &str) -> Self {
        self.acl_user = Some((user.to_string(), password.to_string()));
        self
    }

    /// An extra redis-server command-line argument (e.g. `"--maxmemory"`, `"10mb"`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// Listen on `port` (a port the caller knows is free, e.g. one a stand-in just released). A port
    /// taken by someone else fails the start instead of moving to another port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// A one-node Redis Cluster holding all 16,384 slots: it answers `CLUSTER KEYSLOT` and, like any
    /// cluster, refuses a script or command whose keys are in two slots (`CROSSSLOT`), while a plain
    /// connection still reaches every key.
    pub fn single_node_cluster(mut self) -> Self {
        self.all_slots = true;
        self.cluster_node()
    }

    pub fn start(self) -> RedisServer {
        RedisServer::launch(self)
    }

    pub(crate) fn conf_line(mut self, line: impl Into<String>) -> Self {
        self.conf.push(line.into());
        self
    }

    /// Runs the process as a Sentinel instead of a data server.
    pub(crate) fn sentinel_mode(mut self) -> Self {
        self.sentinel = true;
        self
    }

    /// Makes the server a cluster node: its port is chosen so that the cluster bus
    /// (`port + 10000`) is free as well.
    pub(crate) fn cluster_node(mut self) -> Self {
        self.cluster_bus = true;
        self.conf_line("cluster-enabled yes")
            .conf_line("cluster-config-file nodes.conf")
            .conf_line("cluster-node-timeout 2000")
    }

    pub(crate) fn render_config(&self, port: u16, dir: &Path, log: &Path, tls: Option<&TlsFiles>) -> String {
        let mut lines = vec![
            "bind 127.0.0.1".to_string(),
            "daemonize no".to_string(),
            format!("dir {}", quote(&dir.to_string_lossy())),
            format!("logfile {}", quote(&log.to_string_lossy())),
        ];
        match tls {
            None => lines.push(format!("port {port}")),
            Some(files) => {
                lines.push("port 0".to_string());
                lines.push(format!("tls-port {port}"));
                lines.push(format!("tls-cert-file {}", quote(&files.server_cert.to_string_lossy())));
                lines.push(format!("tls-key-file {}", quote(&files.server_key.to_string_lossy())));
                lines.push(format!("tls-ca-cert-file {}", quote(&files.ca_cert.to_string_lossy())));
                let auth_clients = if self.tls == Tls::Mutual { "yes" } else { "no" };
                lines.push(format!("tls-auth-clients {auth_clients}"));
            }
        }
        if !self.sentinel {
            // RDB snapshots are off in both modes: with AOF they add nothing but forks.
            lines.push("save \"\"".to_string());
            match self.persistence {
                Persistence::AofAlways => {
                    lines.push("appendonly yes".to_string());
                    lines.push("appendfsync always".to_string());
                }
                Persistence::None => lines.push("appendonly no".to_string()),
            }
            // The default (5 s) delays every full sync while the master waits for more
            // replicas to share the transfer; tests would wait on that for nothing.
            lines.push("repl-diskless-sync-delay 0".to_string());
        }
        if let Some(password) = &self.password {
            lines.push(format!("requirepass {}", quote(password)));
        }
        if let Some((user, password)) = &self.acl_user {
            lines.push(format!("user {} on {} ~* &* +@all", quote(user), quote(&format!(">{password}"))));
            if self.password.is_none() {
                lines.push("user default off".to_string());
            }
        }
        lines.extend(self.conf.iter().cloned());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// Quotes a redis.conf argument (sdssplitargs syntax), so paths and passwords with
/// spaces or quotes stay one argument.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}
