//! The one place that starts real Redis servers (and the real Python test agents) for
//! Genesis tests, benchmarks and the chaos harness.
//!
//! Every server is a `redis-server` child process on a loopback port of its own,
//! with a tempdir of its own, killed when its handle drops: tests run in parallel
//! and share nothing, and never touch the machine's shared Redis on 6379.
//!
//! Layout, one concept per module:
//! - [`wait`]: deadline polling ([`eventually`], [`wait_blocking`]), the only way
//!   anything here waits for a state;
//! - `ports`: port candidates ([`free_port`]); races are resolved by retrying in
//!   `server`, not prevented here;
//! - `builder`: [`RedisBuilder`], [`Persistence`], [`Tls`], rendered as redis.conf;
//! - `server`: [`RedisServer`], one process: start with readiness checks,
//!   kill/restart, `redis-cli` access;
//! - `tls`: [`generate_tls`], a throw-away CA with server and client certificates;
//! - `sentinel`: [`SentinelSet`], master + replica + three sentinels;
//! - `cluster`: [`RedisCluster`], N masters;
//! - `standin`: [`LoadingRedis`], a stand-in that answers `-LOADING` (a state a real server leaves
//!   too quickly to test against);
//! - `python`: [`venv_python`], the virtualenv of the Python test peers in `tests/agents/`;
//! - `a2a`: [`A2aAgent`], the real A2A 1.0 test agent (a2a-sdk) as a child process.
//!
//! Everything panics with a message (the server's log where useful) instead of
//! returning errors: callers are tests, and a clear panic is the best report.

// A test kit reports by panicking with a clear message (see above); unwrap/expect are its idiom.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod a2a;
mod builder;
mod cluster;
mod ports;
mod python;
mod sentinel;
mod server;
mod standin;
mod tls;
pub mod wait;

pub use a2a::{A2aAgent, A2aAgentBuilder};
pub use builder::{Persistence, RedisBuilder, Tls};
pub use cluster::RedisCluster;
pub use ports::free_port;
pub use python::{agents_dir, venv_python};
pub use sentinel::SentinelSet;
pub use server::RedisServer;
pub use standin::LoadingRedis;
pub use tls::{generate_tls, TlsFiles};
pub use wait::{eventually, wait_blocking};
