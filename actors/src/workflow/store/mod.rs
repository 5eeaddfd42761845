//! Where workflows live: one versioned document per workflow, written by compare-and-set, with the
//! indexes that list them, and the events stream. [`WorkflowStore`] dispatches between Redis
//! ([`redis::RedisStore`], shared by every node) and memory ([`memory::MemoryStore`], the in-process
//! bus's companion: same semantics, not durable), as [`crate::bus::Bus`] does.
//!
//! **One shard for workflow state.** Every workflow key carries the one hash tag `{wf}`
//! (`genesis:{wf}:…`, see [`keys`]), so each script (create, save with its index updates) is
//! single-slot on Redis Cluster and the indexes are updated atomically with the document. The price:
//! all workflow state lives on one shard. Workflows are small and written a few times per step; the
//! tasks they publish still spread over every shard by topic.
//!
//! Indexes, all sorted sets scored by `created_at` (ms): every workflow, per status, per tenant, and
//! the workflows that have not ended (what the sweeper visits). No SCAN anywhere. An ended workflow's
//! document expires after `workflows.retention`; its ids leave the indexes when the store prunes
//! expired entries ([`WorkflowStore::prune`], run by the sweeper).

pub mod keys;
pub mod memory;
pub mod redis;
mod scripts;

use super::events::WorkflowEvent;
use super::settings::WorkflowSettings;
use super::state::{Workflow, WorkflowStatus};
use crate::bus::Bus;
use crate::tenant::TenantId;
use std::time::Duration;

/// Pace of the background tries of [`WorkflowStore::release_or_keep_trying`].
const RELEASE_BACKOFF: crate::policy::backoff::Backoff =
    crate::policy::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(1), 2.0);

/// A stored workflow's version: 1 when created, +1 per save. A save names the version it read.
pub type Version = u64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("workflow store: redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored document that does not parse (written by another version, or by hand).
    #[error("workflow store: stored workflow {id} is unreadable: {error}")]
    Corrupt { id: String, error: String },
    #[error("workflow store: {0}")]
    Protocol(String),
}

impl StoreError {
    /// The class of a Redis error (transient ones are worth retrying).
    pub fn class(&self) -> crate::connection::ErrorClass {
        match self {
            StoreError::Redis(e) => crate::connection::errors::classify(e),
            _ => crate::connection::ErrorClass::Other,
        }
    }
}

/// What [`WorkflowStore::create`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// Stored now, as version 1.
    New,
    /// A workflow with this id exists already (a re-run creator): that one, untouched.
    Exists(Box<Workflow>, Version),
}

/// Which workflows to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub status: Option<WorkflowStatus>,
    pub tenant: Option<TenantId>,
    /// At most this many (0 means [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`]).
    pub limit: usize,
    /// Where the previous page ended ([`Page::cursor`]).
    pub cursor: Option<String>,
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

impl ListFilter {
    pub fn limit(&self) -> usize {
        if self.limit == 0 {
            DEFAULT_LIMIT
        } else {
            self.limit.min(MAX_LIMIT)
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    pub workflows: Vec<Workflow>,
    /// Pass back as [`ListFilter::cursor`] for the next page; `None` on the last page.
    pub cursor: Option<String>,
}

/// A listing cursor: the last item's `(created_at, id)`. Items sort newest first, ties by id descending.
pub(crate) fn cursor_of(wf: &Workflow) -> String {
    format!("{}:{}", wf.created_at, wf.id)
}

pub(crate) fn parse_cursor(c: &str) -> Option<(u64, String)> {
    let (at, id) = c.split_once(':')?;
    Some((at.parse().ok()?, id.to_string()))
}

/// Whether an index item `(score, id)` comes after the cursor in newest-first order.
pub(crate) fn after_cursor(score: u64, id: &str, cursor: &Option<(u64, String)>) -> bool {
    match cursor {
        None => true,
        Some((at, cid)) => score < *at || (score == *at && id < cid.as_str()),
    }
}

/// An entry of the events stream: its stream id (pass as `after` to read on) and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: String,
    pub event: WorkflowEvent,
}

/// The workflow store; cheap to clone.
#[derive(Clone)]
pub enum WorkflowStore {
    Redis(redis::RedisStore),
    Memory(memory::MemoryStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            WorkflowStore::Redis($s) => $e,
            WorkflowStore::Memory($s) => $e,
        }
    };
}

impl WorkflowStore {
    /// The store that goes with `bus`: on Redis the same connection (and so the same server, TLS,
    /// Sentinel or Cluster); in memory the state the in-process bus holds, so every handle built from
    /// one bus sees the same workflows.
    pub fn for_bus(bus: &Bus, settings: &WorkflowSettings) -> WorkflowStore {
        let opts = Options { retention: settings.retention, events_max_len: settings.events_max_len };
        match bus {
            Bus::Redis(b) => WorkflowStore::Redis(redis::RedisStore::new(b.shared_conn(), opts)),
            Bus::Memory(b) => WorkflowStore::Memory(b.workflows().with_options(opts)),
        }
    }

    /// Store a new workflow as version 1, with its index entries, unless its id exists: then the
    /// existing one is returned and nothing is written.
    pub async fn create(&self, wf: &Workflow) -> Result<Created, StoreError> {
        dispatch!(self, s => s.create(wf).await)
    }

    pub async fn load(&self, id: &str) -> Result<Option<(Workflow, Version)>, StoreError> {
        dispatch!(self, s => s.load(id).await)
    }

    /// Compare-and-set: write `wf` as `expected + 1` if the stored version is still `expected`, moving
    /// its index entries with its status in the same atomic step (an ended workflow leaves the
    /// not-final index and expires after the retention; one that runs again is kept again). `false`:
    /// someone saved first (or it is gone); reload and decide again.
    pub async fn save(&self, wf: &Workflow, expected: Version) -> Result<bool, StoreError> {
        dispatch!(self, s => s.save(wf, expected).await)
    }

    /// Workflows matching `filter`, newest first, one page.
    pub async fn list(&self, filter: &ListFilter) -> Result<Page, StoreError> {
        dispatch!(self, s => s.list(filter).await)
    }

    /// Ids of workflows that have not ended, oldest first, at most `limit` (the sweeper's work list).
    pub async fn not_final(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        dispatch!(self, s => s.not_final(limit).await)
    }

    /// Remove from the indexes up to `limit` ended workflows whose retention has passed. Returns how
    /// many were removed.
    pub async fn prune(&self, limit: usize) -> Result<usize, StoreError> {
        dispatch!(self, s => s.prune(limit).await)
    }

    /// Take the drive lease of workflow `id` for `ttl` under `token`, unless another driver holds it:
    /// one driver at a time carries out a workflow's outbox, so effects are normally carried out once
    /// (a driver that dies holding it is replaced once the lease expires).
    pub async fn lease(&self, id: &str, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        dispatch!(self, s => s.lease(id, token, ttl).await)
    }

    /// Give the lease back, if `token` still holds it.
    pub async fn release(&self, id: &str, token: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.release(id, token).await)
    }

    /// Give the lease back like [`WorkflowStore::release`]; when the store cannot answer now (Redis
    /// unreachable), keep trying in the background for up to `within` (the lease's lifetime) and
    /// return the first error. Without this, a Redis blip during a drive leaves the lease held, and
    /// the workflow waits out the whole lease before the sweeper may carry out its outbox (found by
    /// the chaos harness: steps published 10 s late after a Redis restart). Releasing is by token, so
    /// a late release never takes a lease another driver holds.
    pub async fn release_or_keep_trying(&self, id: &str, token: &str, within: Duration) -> Result<(), StoreError> {
        let Err(first) = self.release(id, token).await else { return Ok(()) };
        let (store, id, token) = (self.clone(), id.to_string(), token.to_string());
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + within;
            let mut tries = crate::policy::retry::Retry::new(RELEASE_BACKOFF);
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(tries.failed().delay).await;
                match store.release(&id, &token).await {
                    Ok(()) => return,
                    Err(e) => tracing::debug!(workflow = %id, error = %e, "drive lease still not given back"),
                }
            }
        });
        Err(first)
    }

    /// Append to the events stream (bounded: about `workflows.events_max_len` entries are kept).
    pub async fn append_events(&self, events: &[WorkflowEvent]) -> Result<(), StoreError> {
        dispatch!(self, s => s.append_events(events).await)
    }

    /// Up to `limit` events after stream id `after` (`None`: from the oldest kept), oldest first.
    pub async fn read_events(&self, after: Option<&str>, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        dispatch!(self, s => s.read_events(after, limit).await)
    }
}

/// What both stores need from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub retention: Duration,
    pub events_max_len: usize,
}

impl Default for Options {
    fn default() -> Self {
        let s = WorkflowSettings::default();
        Options { retention: s.retention, events_max_len: s.events_max_len }
    }
}

pub(crate) fn decode(id: &str, doc: &str) -> Result<Workflow, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Corrupt { id: id.to_string(), error: e.to_string() })
}

pub(crate) fn encode(wf: &Workflow) -> String {
    // A struct of strings, numbers and JSON values: serializing cannot fail.
    serde_json::to_string(wf).unwrap_or_default()
}
