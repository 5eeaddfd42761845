//! The attempts running on this node, by task id, each with its cancellation token: how a cancel
//! request delivered to this node (by [`super::services::canceller`]) reaches the attempt.
//!
//! A request can arrive before the attempt registers (the task was marked running by `begin` and waits
//! a moment for a worker, or its worker is restarting after a crash). It is then kept as *requested*
//! and fires the token the moment the attempt registers, so neither order loses it. Requests nobody
//! claims (the task finished meanwhile) are dropped after [`RunningAttempts::prune`]'s age.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub struct RunningAttempts {
    by_task: DashMap<String, Slot>,
    next: AtomicU64,
}

enum Slot {
    Running { id: u64, token: CancellationToken },
    Requested { at: Instant },
}

/// What a delivered cancel request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// The attempt running here was told to stop.
    Fired,
    /// No attempt runs here yet: kept, it fires when one registers.
    Kept,
}

/// An attempt's registration; dropping it (the attempt ended) removes it.
pub struct Registration {
    attempts: Arc<RunningAttempts>,
    task_id: String,
    id: u64,
}

impl RunningAttempts {
    /// Register an attempt of `task_id` with the token its executor watches. A request that arrived
    /// first fires the token at once.
    pub fn register(self: &Arc<Self>, task_id: &str, token: &CancellationToken) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Slot::Running { id, token: token.clone() };
        match self.by_task.entry(task_id.to_string()) {
            Entry::Occupied(mut e) => {
                if matches!(e.get(), Slot::Requested { .. }) {
                    token.cancel();
                }
                e.insert(slot);
            }
            Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
        Registration { attempts: self.clone(), task_id: task_id.to_string(), id }
    }

    /// Deliver a cancel request for `task_id`.
    pub fn request(&self, task_id: &str) -> Delivered {
        match self.by_task.entry(task_id.to_string()) {
            Entry::Occupied(mut e) => match e.get() {
                Slot::Running { token, .. } => {
                    token.cancel();
                    Delivered::Fired
                }
                Slot::Requested { .. } => {
                    e.insert(Slot::Requested { at: Instant::now() });
                    Delivered::Kept
                }
            },
            Entry::Vacant(e) => {
                e.insert(Slot::Requested { at: Instant::now() });
                Delivered::Kept
            }
        }
    }

    /// Forget requests older than `max_age` that no attempt claimed.
    pub fn prune(&self, max_age: Duration) {
        let now = Instant::now();
        self.by_task.retain(|_, s| match s {
            Slot::Running { .. } => true,
            Slot::Requested { at } => now.duration_since(*at) < max_age,
        });
    }

    /// How many attempts are registered (for tests and health).
    pub fn running(&self) -> usize {
        self.by_task.iter().filter(|s| matches!(s.value(), Slot::Running { .. })).count()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.attempts.by_task.remove_if(&self.task_id, |_, s| matches!(s, Slot::Running { id, .. } if *id == self.id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_fires_the_running_attempt() {
        let r = Arc::new(RunningAttempts::default());
        let token = CancellationToken::new();
        let reg = r.register("t1", &token);
        assert_eq!(r.request("t1"), Delivered::Fired);
        assert!(token.is_cancelled());
        drop(reg);
        assert_eq!(r.running(), 0);
    }

    #[test]
    fn a_request_before_the_attempt_fires_it_when_it_registers() {
        let r = Arc::new(RunningAttempts::default());
        assert_eq!(r.request("t1"), Delivered::Kept);
        let token = CancellationToken::new();
        let _reg = r.register("t1", &token);
        assert!(token.is_cancelled());
        // Claimed: a later attempt of the same task is not cancelled by the old request.
        drop(_reg);
        let again = CancellationToken::new();
        let _reg = r.register("t1", &again);
        assert!(!again.is_cancelled());
    }

    #[test]
    fn unclaimed_requests_are_pruned_and_attempts_are_not() {
        let r = Arc::new(RunningAttempts::default());
        r.request("gone");
        let token = CancellationToken::new();
        let _reg = r.register("t1", &token);
        r.prune(Duration::ZERO);
        let late = CancellationToken::new();
        let _late = r.register("gone", &late);
        assert!(!late.is_cancelled(), "the old request was pruned");
        assert_eq!(r.running(), 2);
    }

    #[test]
    fn an_old_registration_does_not_remove_a_newer_one() {
        let r = Arc::new(RunningAttempts::default());
        let first = r.register("t1", &CancellationToken::new());
        let token = CancellationToken::new();
        let _second = r.register("t1", &token);
        drop(first);
        assert_eq!(r.request("t1"), Delivered::Fired);
        assert!(token.is_cancelled());
    }
}
