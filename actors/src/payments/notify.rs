//! Posts payment summaries and fraud alerts to Discord-compatible webhooks (`{"content": "..."}`).
//!
//! Posting never blocks a decision: messages go through a bounded queue to a background task that
//! retries with backoff; a full queue or a post that keeps failing is logged and counted, nothing more.

use crate::policy::backoff::Backoff;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq)]
pub struct NotifySettings {
    /// Webhook for spend summaries (the dashboard channel).
    pub dashboard_webhook: Option<crate::secret::SecretText>,
    /// Webhook for denials flagged as fraud (the error channel).
    pub alerts_webhook: Option<crate::secret::SecretText>,
    /// Link included in summaries.
    pub dashboard_url: Option<String>,
    pub attempts: u32,
    pub backoff: Backoff,
    pub timeout: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            dashboard_webhook: None,
            alerts_webhook: None,
            dashboard_url: None,
            attempts: 5,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10), 2.0),
            timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Dashboard,
    Alerts,
}

#[derive(Debug, Default)]
pub struct NotifyCounters {
    pub posted: AtomicU64,
    /// Posts given up after every attempt failed.
    pub failed: AtomicU64,
    /// Messages dropped because the queue was full.
    pub dropped: AtomicU64,
}

#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<(Channel, String)>,
    pub counters: Arc<NotifyCounters>,
}

impl Notifier {
    /// Start the background poster. Must be called inside a tokio runtime.
    pub fn start(settings: NotifySettings) -> Notifier {
        let (tx, mut rx) = mpsc::channel::<(Channel, String)>(1024);
        let counters = Arc::new(NotifyCounters::default());
        let c = counters.clone();
        tokio::spawn(async move {
            let client = match reqwest::Client::builder().timeout(settings.timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the webhook HTTP client; notifications disabled");
                    return;
                }
            };
            while let Some((channel, text)) = rx.recv().await {
                let url = match channel {
                    Channel::Dashboard => settings.dashboard_webhook.as_ref().map(|u| u.expose()),
                    Channel::Alerts => settings.alerts_webhook.as_ref().map(|u| u.expose()),
                };
                let Some(url) = url else { continue };
                if post(&client, url, &text, &settings).await {
                    c.posted.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Notifier { tx, counters }
    }

    pub fn send(&self, channel: Channel, text: String) {
        if self.tx.try_send((channel, text)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("webhook queue full; notification dropped");
        }
    }
}

/// Post one message now and wait for the outcome (for the CLI, which exits right after).
pub async fn post_now(settings: &NotifySettings, channel: Channel, text: &str) -> Result<bool, String> {
    let url = match channel {
        Channel::Dashboard => settings.dashboard_webhook.as_ref().map(|u| u.expose()),
        Channel::Alerts => settings.alerts_webhook.as_ref().map(|u| u.expose()),
    };
    let Some(url) = url else { return Err("no webhook configured for this channel".into()) };
    let client = reqwest::Client::builder().timeout(settings.timeout).build().map_err(|e| e.to_string())?;
    Ok(post(&client, url, text, settings).await)
}

/// One message, retried with backoff. True when a 2xx was received.
async fn post(client: &reqwest::Client, url: &str, text: &str, s: &NotifySettings) -> bool {
    // Discord limits content to 2000 characters.
    let content: String = text.chars().take(1900).collect();
    let body = serde_json::json!({ "content": content });
    let mut retry = crate::policy::retry::Retry::new(s.backoff);
    for attempt in 1..=s.attempts.max(1) {
        match client.post(url).json(&body).send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) => tracing::warn!(status = %r.status(), attempt, "webhook post rejected"),
            // Without the URL: a webhook URL is its credential.
            Err(e) => tracing::warn!(error = %e.without_url(), attempt, "webhook post failed"),
        }
        if attempt < s.attempts {
            tokio::time::sleep(retry.failed().delay).await;
        }
    }
    tracing::error!(attempts = s.attempts, "webhook post given up");
    false
}
