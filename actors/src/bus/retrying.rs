//! The one retry helper for bus calls, so no Redis error ends a node (docs/semantics.md, "Redis
//! errors"):
//! - transient errors (connection, timeouts, LOADING, READONLY/MASTERDOWN in a failover, OOM, a
//!   replica that has not confirmed) and lost state (the bus recreates it before answering) are
//!   retried with capped exponential backoff and jitter, forever — an outcome that cannot be written
//!   must not be dropped, and the entry stays pending meanwhile;
//! - configuration errors (credentials rotated, TLS trust) are retried the same way once the node
//!   runs: an operator fixes them without a restart, and the node tells them on `/readyz`;
//! - other errors (tied to the call: a wrong type, a script error on odd data) are retried a few
//!   times and then returned, so a failure tied to one task stays with that task.

use super::BusError;
use crate::connection::ErrorClass;
use crate::policy::backoff::Backoff;
use crate::policy::retry::Retry;
use std::future::Future;

/// How many times an error of class `Other` is tried again before it is returned.
const OTHER_RETRIES: u32 = 3;

/// Whether to try again after the `failures`-th consecutive failure of this class. Pure.
pub fn should_retry(class: ErrorClass, failures: u32) -> bool {
    match class {
        ErrorClass::Transient | ErrorClass::StateLost | ErrorClass::Config => true,
        ErrorClass::Other => failures <= OTHER_RETRIES,
    }
}

pub async fn until_ok<T, F, Fut>(schedule: &Backoff, what: &str, mut op: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut retry = Retry::new(*schedule);
    loop {
        match op().await {
            Ok(v) => {
                let failures = retry.succeeded();
                if failures > 0 {
                    tracing::info!(what, failures, "bus reachable again");
                }
                return Ok(v);
            }
            Err(e) => {
                let class = e.class();
                crate::metrics::count_bus_error(&e);
                let f = retry.failed();
                let non_redis = !matches!(e, BusError::Redis(_) | BusError::NotReplicated { .. });
                if non_redis || !should_retry(class, f.failures) {
                    return Err(e);
                }
                if f.log {
                    tracing::warn!(what, failures = f.failures, class = class.as_str(), delay = ?f.delay, error = %e, "bus call failed; retrying with backoff");
                }
                tokio::time::sleep(f.delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_call_specific_errors_give_up() {
        for class in [ErrorClass::Transient, ErrorClass::StateLost, ErrorClass::Config] {
            assert!(should_retry(class, u32::MAX));
        }
        assert!(should_retry(ErrorClass::Other, OTHER_RETRIES));
        assert!(!should_retry(ErrorClass::Other, OTHER_RETRIES + 1));
    }
}
