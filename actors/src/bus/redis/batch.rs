//! Completions batched per topic. Workers finish tasks concurrently; instead of one script call per
//! outcome, each topic's completer drains whatever outcomes are waiting and writes them with one
//! `complete_many.lua` call (still atomic and fenced per entry). No timer: a lone completion goes at once,
//! so batching adds no latency when the system is idle; under load it amortizes the round trip and
//! Redis's per-call overhead.

use super::args::{CompleteHead, CompleteItem};
use super::scripts::Scripts;
use crate::bus::BusError;
use crate::connection::script::ScriptArgs;
use crate::connection::Conn;
use crate::task::TopicName;
use dashmap::DashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

const MAX_BATCH: usize = 256;

pub(super) struct Item {
    pub args: CompleteItem,
    pub reply: oneshot::Sender<Result<bool, BusError>>,
}

pub(super) struct Completer {
    conn: Conn,
    scripts: Arc<Scripts>,
    replication: super::Replication,
    lanes: DashMap<TopicName, mpsc::Sender<Item>>,
}

impl Completer {
    pub fn new(conn: Conn, scripts: Arc<Scripts>, replication: super::Replication) -> Self {
        Completer { conn, scripts, replication, lanes: DashMap::new() }
    }

    /// Queue one completion and wait for its outcome (`true`: written; `false`: not the owner).
    pub async fn complete(&self, topic: &TopicName, args: CompleteItem) -> Result<bool, BusError> {
        let lane = self
            .lanes
            .entry(topic.clone())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::channel(4096);
                tokio::spawn(run(topic.clone(), rx, self.conn.clone(), self.scripts.clone(), self.replication));
                tx
            })
            .clone();
        let (tx, rx) = oneshot::channel();
        lane.send(Item { args, reply: tx }).await.map_err(|_| BusError::Protocol("completion lane closed".into()))?;
        rx.await.map_err(|_| BusError::Protocol("completion lane dropped the reply".into()))?
    }
}

async fn run(
    topic: TopicName,
    mut rx: mpsc::Receiver<Item>,
    conn: Conn,
    scripts: Arc<Scripts>,
    replication: super::Replication,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut inv = scripts.complete_many.call(&CompleteHead { topic: &topic });
        for item in &batch {
            item.args.push(&mut inv);
        }
        // One connection for the write and its WAIT, so WAIT covers this write (see `Conn::pinned`).
        let mut conn = conn.pinned();
        let outcome = inv.invoke_async::<Vec<i64>>(&mut conn).await.map_err(BusError::from);
        if let Ok(written) = &outcome {
            if written.contains(&1) {
                confirm(&mut conn, replication, &topic).await;
            }
        }
        match outcome {
            Ok(written) if written.len() == batch.len() => {
                for (item, w) in batch.into_iter().zip(written) {
                    let _ = item.reply.send(Ok(w == 1));
                }
            }
            Ok(written) => {
                let msg = format!("complete_many returned {} results for {} items", written.len(), batch.len());
                for item in batch {
                    let _ = item.reply.send(Err(BusError::Protocol(msg.clone())));
                }
            }
            Err(e) => {
                let e = std::sync::Arc::new(e);
                for item in batch {
                    let _ = item.reply.send(Err(share(&e)));
                }
            }
        }
    }
}

/// Wait for the replicas to confirm written outcomes. The outcomes are already acknowledged on the
/// master, so writing them again is not the answer (it would find them acked); `WAIT` is asked again
/// a few times. If the replicas still have not confirmed, the outcome stands as written on the master:
/// should a failover then lose it, the entry is pending again on the new master and the orphan sweep
/// (see `node::services::reclaimer`) hands it to a worker again — at-least-once, never lost.
async fn confirm(conn: &mut Conn, replication: super::Replication, topic: &TopicName) {
    for attempt in 1..=5u32 {
        match super::wait_replicas(conn, replication).await {
            Ok(()) => return,
            Err(e) if attempt == 5 => {
                tracing::warn!(%topic, error = %e, "outcomes written on the master but not confirmed by its replicas; a failover now could replay those tasks");
            }
            Err(_) => {}
        }
    }
}

/// The same error for every item of a failed batch (`BusError` is not `Clone`).
fn share(e: &BusError) -> BusError {
    match e {
        BusError::Redis(r) => BusError::Redis(r.clone()),
        BusError::NotReplicated { wanted, got } => BusError::NotReplicated { wanted: *wanted, got: *got },
        other => BusError::Protocol(other.to_string()),
    }
}
