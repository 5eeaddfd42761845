//! Log output: human-readable by default, JSON with `GENESIS_LOG_FORMAT=json`; level from `RUST_LOG`.
//! Logs go to stderr so that command output on stdout stays machine-readable.

use tracing_subscriber::EnvFilter;

pub fn init(default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("GENESIS_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
