//! Polling with a deadline, the only way this crate (and its callers) should wait for
//! a distributed system to reach a state: a fixed sleep is either too short on a
//! loaded CI machine or needlessly slow everywhere else.

use std::future::Future;
use std::time::{Duration, Instant};

/// Gap between two polls: short enough that tests don't idle, long enough that a
/// poll which spawns `redis-cli` doesn't hog one of the two cores.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `f` until it yields `Some`, for at most `deadline`.
///
/// Panics naming `what`, so a timed-out test says which condition never held rather
/// than failing later on a confusing assertion.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = f().await {
            return value;
        }
        if started.elapsed() >= deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Blocking twin of [`eventually`], for synchronous harness code (server start-up,
/// failover) that must not require a tokio runtime.
pub fn wait_blocking<T>(deadline: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    match poll_until(deadline, &mut f) {
        Some(value) => value,
        None => panic!("timed out after {deadline:?} waiting for {what}"),
    }
}

/// Non-panicking core of [`wait_blocking`], for callers that have a better error
/// message (such as a server log) to attach on timeout.
pub(crate) fn poll_until<T>(deadline: Duration, f: &mut impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
