//! A connection to the master that Redis Sentinel names, which follows failovers.
//!
//! The redis crate's `ConnectionManager` reconnects to one fixed address; after a failover that
//! address is dead or a read-only replica. This wrapper keeps a manager to the current master and,
//! when a call fails in a way a failover explains (connection lost, READONLY, MASTERDOWN), asks the
//! sentinels for the master again in the background and swaps in a manager to the new one. The failed
//! call itself returns its error: callers already retry transient errors with backoff, and their next
//! try goes to the new master.
//!
//! Errors alone are not enough: a killed master restarted on its old port accepts the reconnect and
//! claims to be master until Sentinel demotes it (seconds later), so writes would succeed there and
//! be thrown away. A watcher therefore asks the sentinels every second which master they name, and
//! switches as soon as it differs from the one in use.

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::SentinelClient;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often the sentinels are asked which master they name.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// Switch to the master the sentinels name now, if it is not the one in use.
async fn refresh(shared: &Shared) {
    let resolved = shared.sentinel.lock().await.async_get_client().await;
    let client = match resolved {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "sentinels could not name a master yet");
            return;
        }
    };
    let addr = address_of(&client);
    if shared.current.read().map(|g| g.0 == addr).unwrap_or(false) {
        return;
    }
    match ConnectionManager::new_with_config(client, shared.config.clone()).await {
        Ok(m) => {
            tracing::warn!(master = %addr, "Redis Sentinel: following the failover to the new master");
            if let Ok(mut g) = shared.current.write() {
                *g = (addr, m);
            }
        }
        Err(e) => tracing::debug!(error = %e, "the new master is not reachable yet"),
    }
}

#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<Shared>,
}

struct Shared {
    sentinel: Arc<tokio::sync::Mutex<SentinelClient>>,
    current: RwLock<(String, ConnectionManager)>,
    config: ConnectionManagerConfig,
    refreshing: AtomicBool,
}

/// The master's address as the client would dial it, for comparison and logs.
fn address_of(client: &redis::Client) -> String {
    client.get_connection_info().addr().to_string()
}

impl SentinelConn {
    pub async fn connect(
        sentinel: Arc<tokio::sync::Mutex<SentinelClient>>,
        config: ConnectionManagerConfig,
    ) -> Result<SentinelConn, RedisError> {
        let client = sentinel.lock().await.async_get_client().await?;
        let addr = address_of(&client);
        let manager = ConnectionManager::new_with_config(client, config.clone()).await?;
        let shared = Arc::new(Shared {
            sentinel,
            current: RwLock::new((addr, manager)),
            config,
            refreshing: AtomicBool::new(false),
        });
        let watched = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Ends with the last clone of this connection.
                let Some(shared) = watched.upgrade() else { break };
                if !shared.refreshing.swap(true, Ordering::AcqRel) {
                    refresh(&shared).await;
                    shared.refreshing.store(false, Ordering::Release);
                }
            }
        });
        Ok(SentinelConn { shared })
    }

    /// The manager to the master as currently known.
    pub fn current(&self) -> ConnectionManager {
        self.manager()
    }

    fn manager(&self) -> ConnectionManager {
        match self.shared.current.read() {
            Ok(g) => g.1.clone(),
            Err(poisoned) => poisoned.into_inner().1.clone(),
        }
    }

    /// Ask the sentinels for the master again, once at a time, without blocking the caller.
    fn refresh_soon(&self) {
        if self.shared.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            refresh(&shared).await;
            shared.refreshing.store(false, Ordering::Release);
        });
    }

    fn after(&self, e: &RedisError) {
        let failover_sign = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"));
        if failover_sign || e.to_string().contains("READONLY") {
            self.refresh_soon();
        }
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut m = self.manager();
            let r = m.req_packed_command(cmd).await;
            if let Err(e) = &r {
                self.after(e);
            }
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut m = self.manager();
            let r = m.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &r {
                self.after(e);
            }
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.manager().get_db()
    }
}
