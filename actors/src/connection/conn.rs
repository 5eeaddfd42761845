//! One connection type for every topology, so the bus and the ledger are written once: a
//! reconnecting manager (standalone), a Sentinel-following manager, or a slot-routing cluster
//! connection. All three are multiplexed and cheap to clone.

use super::sentinel::SentinelConn;
use super::target::{RedisTarget, Topology};
use crate::policy::backoff::Backoff;
use crate::secret::ExposeSecret;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, TlsMode, Value};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Sentinel(SentinelConn),
    Cluster(ClusterConnection),
}

impl Conn {
    /// The same underlying connection for a sequence of calls that must share it (a write and the
    /// `WAIT` that confirms it): a Sentinel connection may switch masters between two calls.
    pub fn pinned(&self) -> Conn {
        match self {
            Conn::Sentinel(s) => Conn::Single(s.current()),
            other => other.clone(),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens connections to one [`RedisTarget`]. Built once per process; every bus connection (the shared
/// one and each blocking reader's own) and the ledger's come from it.
#[derive(Clone)]
pub struct Connector {
    target: Arc<RedisTarget>,
    reconnect: Backoff,
    how: How,
}

// One per connector, built once: the size of the larger variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum How {
    Single(Arc<redis::Client>),
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
    Cluster(Arc<ClusterClient>),
}

fn node_url(tls: bool, host: &str, port: u16) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    if host.contains(':') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

impl Connector {
    /// Build the clients (no I/O yet). Fails only on settings the redis crate refuses.
    pub fn new(target: RedisTarget, reconnect: Backoff) -> RedisResult<Connector> {
        let p = &target.parsed;
        let password = target.password.as_ref().map(|s| s.expose_secret().to_string());
        let how = match p.topology {
            Topology::Standalone => {
                let mut info = target.url.expose_secret().into_connection_info()?;
                if let Some(pw) = &password {
                    info = info.clone().set_redis_settings(info.redis_settings().clone().set_password(pw));
                }
                let client = match &target.certs {
                    Some(c) => redis::Client::build_with_tls(info, c.clone())?,
                    None => redis::Client::open(info)?,
                };
                How::Single(Arc::new(client))
            }
            Topology::Sentinel => {
                let addrs = p.nodes.iter().map(|(h, port)| {
                    if p.tls {
                        ConnectionAddr::TcpTls { host: h.clone(), port: *port, insecure: false, tls_params: None }
                    } else {
                        ConnectionAddr::Tcp(h.clone(), *port)
                    }
                });
                let master = p.master.clone().unwrap_or_default();
                let mut b =
                    SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?.set_client_to_redis_db(p.db);
                if p.tls {
                    b = b
                        .set_client_to_redis_tls_mode(TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                    if let Some(c) = &target.certs {
                        b = b
                            .set_client_to_redis_certificates(c.clone())
                            .set_client_to_sentinel_certificates(c.clone());
                    }
                }
                if let Some(u) = &p.username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(pw) = &password {
                    b = b.set_client_to_redis_password(pw);
                }
                How::Sentinel(Arc::new(tokio::sync::Mutex::new(b.build()?)))
            }
            Topology::Cluster => {
                let seeds: Vec<String> = p.nodes.iter().map(|(h, port)| node_url(p.tls, h, *port)).collect();
                let mut b = ClusterClient::builder(seeds)
                    .connection_timeout(Duration::from_secs(2))
                    .retries(2)
                    .min_retry_wait(reconnect.initial.as_millis() as u64)
                    .max_retry_wait(reconnect.max.as_millis() as u64);
                if let Some(u) = &p.username {
                    b = b.username(u);
                }
                if let Some(pw) = &password {
                    b = b.password(pw);
                }
                if let Some(c) = &target.certs {
                    b = b.certs(c.clone());
                }
                How::Cluster(Arc::new(b.build()?))
            }
        };
        Ok(Connector { target: Arc::new(target), reconnect, how })
    }

    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// The URL without secrets, for logs.
    pub fn shown(&self) -> &str {
        &self.target.shown
    }

    pub fn topology(&self) -> Topology {
        self.target.parsed.topology
    }

    fn manager_config(&self, response_timeout: Duration) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_min_delay(self.reconnect.initial)
            .set_max_delay(self.reconnect.max)
            .set_number_of_retries(3)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(response_timeout))
    }

    /// Open a connection whose calls time out after `response_timeout` (a blocking reader needs more
    /// than its block time). One attempt: callers retry with backoff.
    pub async fn connect(&self, response_timeout: Duration) -> RedisResult<Conn> {
        Ok(match &self.how {
            How::Single(client) => Conn::Single(
                ConnectionManager::new_with_config((**client).clone(), self.manager_config(response_timeout)).await?,
            ),
            How::Sentinel(s) => {
                Conn::Sentinel(SentinelConn::connect(s.clone(), self.manager_config(response_timeout)).await?)
            }
            How::Cluster(client) => {
                let cfg = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(Duration::from_secs(2))
                    .set_response_timeout(response_timeout);
                Conn::Cluster(client.get_async_connection_with_config(cfg).await?)
            }
        })
    }
}
