//! # genesis-actors: the supervised agent runtime
//!
//! Layout, top-down as the actor tree runs:
//!
//! - [`runtime`] starts a node: the [`node::root`] supervisor, which starts one agent (see [`agent`]:
//!   its [`agent::supervisor`] owning an [`agent::fetcher`] and `concurrency` [`agent::worker`]s) per
//!   roster entry, and the node-wide services in [`node::services`] (heartbeat, reclaimer, retry
//!   scheduler, stream trimmer, sampler). [`supervision`] holds what both supervisors share.
//! - [`connection`] reaches Redis in any shape (standalone, Sentinel, Cluster; TLS; ACL) and
//!   classifies its errors; [`secret`] keeps passwords and webhook URLs out of logs.
//! - [`bus`] is the durable task log: Redis Streams with consumer groups ([`bus::redis`]) or the
//!   in-process [`bus::memory`] bus with the same semantics (not durable).
//! - [`executor`] is the trait through which every agent's work runs, plus the simulated executor.
//! - [`policy`] holds the pure decisions: backoff, restart intensity, the outcome of an attempt.
//! - [`task`], [`tenant`] and [`roster`] are the domain types parsed at the edge; [`settings`] the node's knobs;
//!   [`events`] the supervision events anyone can subscribe to.
//! - [`apikey`] holds the HTTP API's keys (hashes only) and says whose a presented key is.
//! - [`workflow`] plans a business as a DAG of agent tasks and advances it durably from any node.
//!
//! The guarantees are stated in `docs/semantics.md` at the repository root.

pub mod agent;
pub mod apikey;
pub mod bus;
pub mod connection;
pub mod events;
pub mod executor;
pub mod metrics;
pub mod node;
pub mod payments;
pub mod policy;
pub mod roster;
pub mod runtime;
pub mod secret;
pub mod settings;
pub mod supervision;
pub mod task;
pub mod tenant;
pub mod trace;
pub mod workflow;
