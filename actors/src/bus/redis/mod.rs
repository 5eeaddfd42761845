//! The Redis Streams bus: the distributed engine every node shares.

mod args;
mod batch;
mod control;
mod dlq;
mod lost;
mod reader;
mod record;
mod reply;
mod scripts;

pub use reader::RedisReader;

use super::dlq::keep_original;
use super::keys;
use super::types::*;
use super::GROUP;
use crate::connection::script::ScriptArgs;
use crate::connection::{Conn, Connector, ErrorClass, RedisOptions, RedisTarget};
use crate::policy::backoff::Backoff;
use crate::task::{TaskEnvelope, TopicName};
use args::*;
use redis::Value;
use reply::{field, int, items, pairs, text};
use scripts::Scripts;
use std::sync::Arc;
use std::time::Duration;

/// Cheap to clone: one shared multiplexed, auto-reconnecting connection for everything but blocking
/// reads (each reader has its own).
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
    /// `bus.dlq_max_entry_bytes`: how much of an original entry a dead letter keeps.
    dlq_entry_limit: usize,
}

struct Inner {
    connector: Connector,
    conn: Conn,
    completer: batch::Completer,
    scripts: Arc<Scripts>,
    replication: Replication,
    lost: lost::LostLog,
}

/// `bus.publish_replicas`: how many replicas must hold a publish (and a completion) before it counts
/// as written (`WAIT`), and how long to wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replication {
    pub replicas: u32,
    pub timeout: Duration,
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    crate::secret::redact_url(url)
}

impl RedisBus {
    /// Connect to a plain URL (one attempt), without TLS files or replication. For tools and tests;
    /// the node uses [`RedisBus::open`].
    pub async fn connect(url: &str, reconnect: Backoff) -> Result<Self, BusError> {
        let opts = RedisOptions { url: Some(url.to_string().into()), ..Default::default() };
        let target = RedisTarget::resolve(&opts, "bus.redis_url").map_err(|e| BusError::Invalid(e.to_string()))?;
        Self::open(Connector::new(target, reconnect)?, Replication::default()).await
    }

    /// Open the shared connection (one attempt). Callers that must survive an unreachable Redis retry
    /// with backoff.
    pub async fn open(connector: Connector, replication: Replication) -> Result<Self, BusError> {
        let conn = connector.connect(Duration::from_secs(10)).await?;
        let scripts = Arc::new(Scripts::load());
        let completer = batch::Completer::new(conn.clone(), scripts.clone(), replication);
        Ok(RedisBus {
            inner: Arc::new(Inner { connector, conn, completer, scripts, replication, lost: lost::LostLog::default() }),
            dlq_entry_limit: crate::bus::dlq::DEFAULT_MAX_ENTRY_BYTES,
        })
    }

    /// See [`crate::bus::Bus::with_dlq_entry_limit`].
    pub fn with_dlq_entry_limit(mut self, bytes: usize) -> Self {
        self.dlq_entry_limit = bytes;
        self
    }

    fn conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    /// The shared connection, for stores that live beside the bus on the same Redis (the workflow
    /// store): same server, TLS, Sentinel or Cluster, same reconnects.
    pub fn shared_conn(&self) -> Conn {
        self.inner.conn.clone()
    }

    /// After Redis lost a topic's consumer group (a flush, an empty restart, a failover to a replica
    /// without the data): recreate it, say so once, and let the caller's retry go on.
    async fn recover(&self, topic: &TopicName, e: BusError) -> BusError {
        if e.class() == ErrorClass::StateLost {
            self.inner.lost.note(topic);
            if let Err(again) = ensure_group(&mut self.conn(), topic).await {
                return again;
            }
        }
        e
    }

    /// `WAIT` for the configured replicas on the connection that just wrote.
    async fn confirm(&self, conn: &mut Conn) -> Result<(), BusError> {
        wait_replicas(conn, self.inner.replication).await
    }

    pub fn describe(&self) -> String {
        format!("redis ({})", self.inner.connector.shown())
    }

    pub async fn reader(&self, consumer: &str) -> Result<RedisReader, BusError> {
        // Its own connection: a blocking XREADGROUP holds the connection for the whole wait.
        let conn = self.inner.connector.connect(Duration::from_secs(60)).await?;
        Ok(RedisReader { conn, consumer: consumer.to_string(), scripts: self.inner.scripts.clone() })
    }

    pub async fn ensure_topics(&self, topics: &[TopicName]) -> Result<(), BusError> {
        for t in topics {
            ensure_group(&mut self.conn(), t).await?;
        }
        Ok(())
    }

    pub async fn publish(&self, env: &TaskEnvelope, ttl: Duration) -> Result<Published, BusError> {
        let mut conn = self.conn().pinned();
        let args = PublishArgs { task: env, ttl_ms: ttl_ms(ttl) };
        let r: Option<String> = self.inner.scripts.publish.call(&args).invoke_async(&mut conn).await?;
        self.confirm(&mut conn).await?;
        Ok(r.map(Published::Appended).unwrap_or(Published::Duplicate))
    }

    pub async fn append_raw(&self, topic: &TopicName, fields: &[(&str, &str)]) -> Result<String, BusError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(keys::stream(topic)).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        Ok(cmd.query_async(&mut self.conn()).await?)
    }

    pub async fn begin(
        &self,
        consumer: &str,
        items: &[(&Delivery, &TaskEnvelope)],
        ttl: Duration,
    ) -> Result<Vec<Begun>, BusError> {
        let Some((first, _)) = items.first() else { return Ok(Vec::new()) };
        let mut inv = self.inner.scripts.begin.call(&BeginHead { topic: &first.topic, ttl_ms: ttl_ms(ttl), consumer });
        for (d, env) in items {
            BeginItem { topic: &d.topic, entry_id: &d.entry_id, task: env }.push(&mut inv);
        }
        let run: Vec<i64> = match inv.invoke_async(&mut self.conn()).await {
            Ok(r) => r,
            Err(e) => return Err(self.recover(&first.topic, e.into()).await),
        };
        if run.len() != items.len() {
            return Err(BusError::Protocol(format!("begin returned {} verdicts for {} items", run.len(), items.len())));
        }
        run.into_iter()
            .map(|r| match r {
                0 => Ok(Begun::AlreadySucceeded),
                1 => Ok(Begun::Run),
                2 => Ok(Begun::CancelRequested),
                3 => Ok(Begun::NotOwner),
                other => Err(BusError::Protocol(format!("begin returned the unknown verdict {other}"))),
            })
            .collect()
    }

    pub async fn complete(
        &self,
        consumer: &str,
        d: &Delivery,
        c: &Completion,
        ttl: Duration,
    ) -> Result<Completed, BusError> {
        let task = match c {
            Completion::Succeeded { task, .. } => Some(task),
            Completion::Retry { next, .. } => Some(next),
            Completion::Dead { task, .. } => task.as_ref(),
        };
        let who = task.map(Identity::of).unwrap_or_default();
        let attempt = match c {
            Completion::Retry { next, .. } => next.attempt.saturating_sub(1),
            _ => task.map(|t| t.attempt).unwrap_or(0),
        };
        let outcome = match c {
            Completion::Succeeded { result, .. } => ItemOutcome::Ok { result: result.to_string() },
            Completion::Retry { next, delay, error } => {
                ItemOutcome::Retry { error: error.clone(), delay_ms: delay.as_millis() as u64, next: next.to_json() }
            }
            Completion::Dead { reason, error, .. } => ItemOutcome::Dead {
                error: error.clone(),
                reason: reason.clone(),
                original: keep_original(d.raw.as_deref().unwrap_or_default(), self.dlq_entry_limit),
            },
        };
        let item = CompleteItem {
            result_key: keys::result(&d.topic, &who.task_id),
            entry_id: d.entry_id.clone(),
            consumer: consumer.to_string(),
            ttl_ms: ttl_ms(ttl),
            who,
            attempt,
            deliveries: d.deliveries,
            outcome,
        };
        let written = match self.inner.completer.complete(&d.topic, item).await {
            Ok(w) => w,
            Err(e) => return Err(self.recover(&d.topic, e).await),
        };
        Ok(if written { Completed::Done } else { Completed::NotOwner })
    }

    pub async fn redeliver(
        &self,
        consumer: &str,
        topic: &TopicName,
        entry_id: &str,
    ) -> Result<Option<Delivery>, BusError> {
        let args = RedeliverArgs { topic, consumer, entry_id };
        let r: redis::RedisResult<Value> =
            self.inner.scripts.redeliver.call(&args).invoke_async(&mut self.conn()).await;
        let v = match r {
            Ok(v) => v,
            Err(e) => return Err(self.recover(topic, e.into()).await),
        };
        if matches!(v, Value::Nil) {
            return Ok(None);
        }
        let mut it = items(v).into_iter();
        let n = it.next().as_ref().and_then(int).unwrap_or(1);
        let raw = it.next().and_then(reply::envelope);
        Ok(Some(Delivery {
            topic: topic.clone(),
            entry_id: entry_id.to_string(),
            raw,
            deliveries: n.clamp(1, u32::MAX as i64) as u32,
        }))
    }

    pub async fn move_due_retries(&self, topic: &TopicName, limit: usize) -> Result<usize, BusError> {
        let args = MoveDueArgs { topic, limit };
        let n: i64 = self.inner.scripts.move_due.call(&args).invoke_async(&mut self.conn()).await?;
        Ok(n.max(0) as usize)
    }

    pub async fn trim(&self, topic: &TopicName) -> Result<usize, BusError> {
        let n: i64 = self.inner.scripts.trim.call(&TrimArgs { topic }).invoke_async(&mut self.conn()).await?;
        Ok(n.max(0) as usize)
    }

    pub async fn heartbeat(
        &self,
        node_id: &str,
        instance: &str,
        ttl: Duration,
        info: &str,
        dead: &str,
    ) -> Result<Lease, BusError> {
        let mut conn = self.conn();
        let args = HeartbeatArgs { node_id, instance, info, ttl_ms: ttl_ms(ttl), dead };
        let holder: Option<String> = self.inner.scripts.heartbeat.call(&args).invoke_async(&mut conn).await?;
        if let Some(holder) = holder {
            return Ok(Lease::Taken { holder });
        }
        // The index of nodes is one key of its own (no SCAN: on Redis Cluster a SCAN sees one shard).
        let expires = crate::task::now_ms().saturating_add(ttl_ms(ttl));
        let _: () = redis::cmd("ZADD").arg(keys::NODES).arg(expires).arg(node_id).query_async(&mut conn).await?;
        Ok(Lease::Held)
    }

    pub async fn clear_heartbeat(&self, node_id: &str, instance: &str) -> Result<(), BusError> {
        let mut conn = self.conn();
        let args = ReleaseArgs { node_id, instance };
        let removed: i64 = self.inner.scripts.release.call(&args).invoke_async(&mut conn).await?;
        if removed == 0 {
            return Ok(());
        }
        let _: i64 = redis::cmd("ZREM").arg(keys::NODES).arg(node_id).query_async(&mut conn).await?;
        Ok(())
    }

    pub async fn live_nodes(&self) -> Result<Vec<(String, String)>, BusError> {
        let mut conn = self.conn();
        let now = crate::task::now_ms();
        // Forget nodes whose lease ended more than a day ago.
        let _: i64 = redis::cmd("ZREMRANGEBYSCORE")
            .arg(keys::NODES)
            .arg("-inf")
            .arg(now.saturating_sub(86_400_000))
            .query_async(&mut conn)
            .await?;
        let names: Vec<String> = redis::cmd("ZRANGE").arg(keys::NODES).arg(0).arg(-1).query_async(&mut conn).await?;
        let mut out = Vec::new();
        for name in names {
            let info: Option<String> = redis::cmd("GET").arg(keys::node(&name)).query_async(&mut conn).await?;
            if let Some(info) = info {
                out.push((name, info));
            }
        }
        out.sort();
        Ok(out)
    }

    pub async fn reclaim_dead(
        &self,
        consumer: &str,
        topic: &TopicName,
        min_idle: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut conn = self.conn();
        let summary: Value =
            match redis::cmd("XPENDING").arg(keys::stream(topic)).arg(GROUP).query_async(&mut conn).await {
                Ok(v) => v,
                Err(e) => return Err(self.recover(topic, e.into()).await),
            };
        let holders: Vec<String> = items(summary)
            .into_iter()
            .nth(3)
            .map(items)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| items(c).first().and_then(text))
            .collect();
        let me = keys::node_of_consumer(consumer);
        let mut out = Vec::new();
        for holder in holders {
            let node = keys::node_of_consumer(&holder);
            if node == me || out.len() >= limit {
                continue;
            }
            let alive: bool = redis::cmd("EXISTS").arg(keys::node(node)).query_async(&mut conn).await?;
            if alive {
                continue;
            }
            let args = ReclaimArgs {
                topic,
                dead: &holder,
                claimer: consumer,
                min_idle_ms: min_idle.as_millis() as u64,
                limit: limit - out.len(),
            };
            let v: Value = self.inner.scripts.reclaim.call(&args).invoke_async(&mut conn).await?;
            for (id, n, raw) in reply::id_count_fields(v)? {
                out.push(Delivery { topic: topic.clone(), entry_id: id, raw, deliveries: n });
            }
        }
        Ok(out)
    }

    pub async fn stale_own(
        &self,
        consumer: &str,
        topic: &TopicName,
        min_idle: Duration,
        limit: usize,
    ) -> Result<Vec<String>, BusError> {
        let r: redis::RedisResult<Value> = redis::cmd("XPENDING")
            .arg(keys::stream(topic))
            .arg(GROUP)
            .arg("IDLE")
            .arg(min_idle.as_millis() as u64)
            .arg("-")
            .arg("+")
            .arg(limit.max(1))
            .arg(consumer)
            .query_async(&mut self.conn())
            .await;
        let v = match r {
            Ok(v) => v,
            Err(e) => return Err(self.recover(topic, e.into()).await),
        };
        Ok(items(v).into_iter().filter_map(|e| items(e).first().and_then(text)).collect())
    }

    pub async fn task(&self, topic: &TopicName, task_id: &str) -> Result<Option<TaskRecord>, BusError> {
        let v: Value = redis::cmd("HGETALL").arg(keys::result(topic, task_id)).query_async(&mut self.conn()).await?;
        record::task_record(topic, task_id, pairs(v))
    }

    pub async fn stats(&self, topic: &TopicName) -> Result<TopicStats, BusError> {
        let mut conn = self.conn();
        let stream = keys::stream(topic);
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&stream).cmd("XLEN").arg(keys::dlq(topic)).cmd("ZCARD").arg(keys::retries(topic));
        let (length, dlq, retrying): (u64, u64, u64) = pipe.query_async(&mut conn).await?;
        let mut stats =
            TopicStats { topic: topic.to_string(), length, pending: 0, lag: 0, consumers: 0, retrying, dlq };
        if length == 0 {
            let exists: bool = redis::cmd("EXISTS").arg(&stream).query_async(&mut conn).await?;
            if !exists {
                return Ok(stats);
            }
        }
        let groups: Value = redis::cmd("XINFO").arg("GROUPS").arg(&stream).query_async(&mut conn).await?;
        for g in items(groups) {
            let g = pairs(g);
            if field(&g, "name") == Some(GROUP) {
                let num = |k: &str| field(&g, k).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                stats.pending = num("pending");
                stats.lag = num("lag");
                stats.consumers = num("consumers");
            }
        }
        Ok(stats)
    }

    pub async fn ping(&self) -> Result<(), BusError> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

/// `WAIT n timeout` on `conn`; an error when fewer replicas confirmed in time.
pub(super) async fn wait_replicas(conn: &mut Conn, r: Replication) -> Result<(), BusError> {
    if r.replicas == 0 {
        return Ok(());
    }
    let got: i64 = redis::cmd("WAIT").arg(r.replicas).arg(r.timeout.as_millis() as u64).query_async(conn).await?;
    if got < r.replicas as i64 {
        return Err(BusError::NotReplicated { wanted: r.replicas, got: got.max(0) as u32 });
    }
    Ok(())
}

pub(super) async fn ensure_group(conn: &mut Conn, topic: &TopicName) -> Result<(), BusError> {
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys::stream(topic))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e.into()),
    }
}
