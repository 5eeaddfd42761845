//! How a node reaches Redis, whatever shape it has: standalone (`redis://`, `rediss://`, `unix://`),
//! Sentinel (`redis+sentinel://`, following failovers) or Cluster (`redis+cluster://`), with TLS
//! (system roots, a private CA, mutual TLS) and ACL credentials.
//!
//! - [`target`] parses and checks the settings once (pure URL parsing, files read and validated);
//! - [`conn`] opens [`Conn`]s, one type for all topologies, used by the bus and the ledger alike;
//! - [`sentinel`] follows a Sentinel failover;
//! - [`errors`] classifies Redis errors: wait, repair, or ask an operator;
//! - [`script`] loads the Lua scripts of the bus and the ledger, with typed arguments.

pub mod conn;
pub mod errors;
pub mod script;
pub mod sentinel;
pub mod target;

pub use conn::{Conn, Connector};
pub use errors::{classify, ErrorClass};
pub use target::{RedisOptions, RedisTarget, TargetError, Topology};
