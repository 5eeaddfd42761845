//! # genesis-actors: the supervised agent runtime
//!
//! Layout, top-down as the actor tree runs:
//!
//! - [`runtime`] starts a node: the [`supervisor::root`] supervisor, which starts one
//!   [`supervisor::agent`] supervisor per roster entry (each owning an [`agent::fetcher`] and
//!   `concurrency` [`agent::worker`]s) and the service actors in [`service`] (heartbeat, reclaimer,
//!   retry scheduler, stream trimmer).
//! - [`bus`] is the durable task log: Redis Streams with consumer groups ([`bus::redis`]) or the
//!   in-process [`bus::memory`] bus with the same semantics (not durable).
//! - [`executor`] is the trait through which every agent's work runs, plus the simulated executor.
//! - [`policy`] holds the pure decisions: backoff, restart intensity, the outcome of an attempt.
//! - [`task`], [`tenant`] and [`roster`] are the domain types parsed at the edge; [`settings`] the node's knobs;
//!   [`events`] the supervision events anyone can subscribe to.
//!
//! The guarantees are stated in `docs/semantics.md` at the repository root.

pub mod agent;
pub mod bus;
pub mod connection;
pub mod events;
pub mod executor;
pub mod metrics;
pub mod payments;
pub mod policy;
pub mod roster;
pub mod runtime;
pub mod secret;
pub mod service;
pub mod settings;
pub mod supervisor;
pub mod task;
pub mod tenant;
pub mod trace;
