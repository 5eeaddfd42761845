//! systemd integration (`Type=notify`): `READY=1` once every supervisor is up, `WATCHDOG=1` pings while
//! the root supervisor answers its mailbox (so a wedged runtime stops pinging and systemd restarts it),
//! `STOPPING=1` on shutdown. Without `NOTIFY_SOCKET` these do nothing.

use genesis_actors::runtime::RuntimeHandle;
use sd_notify::NotifyState;

pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status("running")]) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Ping the watchdog at half its interval, but only after the root supervisor answered a ping within
/// that half interval.
pub fn spawn_watchdog(runtime: RuntimeHandle) -> Option<tokio::task::JoinHandle<()>> {
    let every = sd_notify::watchdog_enabled()? / 2;
    tracing::info!(?every, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if runtime.root_alive(every).await {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            } else {
                tracing::error!("root supervisor did not answer; withholding the watchdog ping");
            }
        }
    }))
}
