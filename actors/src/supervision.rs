//! Supervision, OTP style, on top of ractor's links (ractor has no restart strategies of its own):
//! what the [`crate::node::root`] and [`crate::agent::supervisor`] supervisors share.
//!
//! Both supervisors are one-for-one: a failed child is restarted alone, after a backoff that grows with
//! the number of recent restarts, and only while the restart intensity holds (see
//! [`crate::policy::intensity`]). Past it, the supervisor fails itself: the agent supervisor escalates
//! to the root, and the root gives up, which ends the process with a non-zero exit (systemd restarts it).

use ractor::{ActorCell, SupervisionEvent};

/// The child and the reason of an exit event; `None` for events that are not exits.
pub(crate) fn exit_of(evt: &SupervisionEvent) -> Option<(ActorCell, String)> {
    match evt {
        SupervisionEvent::ActorFailed(cell, err) => Some((cell.clone(), format!("failed: {err}"))),
        SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell.clone(), format!("stopped: {}", reason.as_deref().unwrap_or("no reason given"))))
        }
        _ => None,
    }
}
