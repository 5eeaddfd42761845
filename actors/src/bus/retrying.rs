//! The one retry helper for bus calls: transient failures (connection refused, Redis loading, timeouts)
//! are retried with capped exponential backoff and jitter, forever — an outcome that cannot be written
//! must not be dropped, and the entry stays pending meanwhile. Other errors return at once.

use super::BusError;
use crate::policy::backoff::Backoff;
use std::future::Future;

pub async fn until_ok<T, F, Fut>(schedule: &Backoff, what: &str, mut op: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let mut failures: u32 = 0;
    loop {
        match op().await {
            Ok(v) => {
                if failures > 0 {
                    tracing::info!(what, failures, "bus reachable again");
                }
                return Ok(v);
            }
            Err(e) if e.is_transient() => {
                failures = failures.saturating_add(1);
                let delay = schedule.delay_random(failures);
                // Log the first failure and then at exponentially spaced counts, not every retry.
                if failures.is_power_of_two() {
                    tracing::warn!(what, failures, ?delay, error = %e, "bus unavailable; retrying with backoff");
                }
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}
