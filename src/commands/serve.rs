//! `genesis serve`: run a node until SIGTERM/SIGINT, or until the root supervisor gives up (then exit
//! non-zero so systemd restarts the process).

use crate::cli::RedisOpt;
use crate::config::ServiceConfig;
use anyhow::{anyhow, Result};
use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::{redact, RedisBus};
use genesis_actors::bus::Bus;
use genesis_actors::bus::BusError;
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::Ledger;
use genesis_actors::payments::ledger::LedgerError;
use genesis_actors::payments::notify::Notifier;
use genesis_actors::runtime::{Runtime, RuntimeError};

pub async fn run(mut cfg: ServiceConfig, redis: RedisOpt, node_id: Option<String>) -> Result<()> {
    if let Some(id) = node_id {
        cfg.settings.node_id = crate::config::validate_node_id("--node-id", &id)?;
    }
    let bus = match super::redis_url(&cfg, &redis) {
        Some(url) => tokio::select! {
            bus = connect_with_backoff(&url, &cfg) => bus?,
            _ = shutdown_signal() => return Ok(()),
        },
        None => {
            tracing::warn!("no Redis URL configured: running on the in-process bus. It is NOT durable: pending tasks are lost when this process exits. Set bus.redis_url or --redis-url for production.");
            Bus::Memory(MemoryBus::new())
        }
    };
    let listener = match cfg.http_addr {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|e| {
            anyhow!(
                "http.addr = \"{addr}\": cannot listen ({e}); choose a free address or set it to \"\" to disable HTTP"
            )
        })?),
        None => None,
    };
    let url = super::redis_url(&cfg, &redis);
    let start = start_until_ready(&cfg, bus, url.as_deref());
    let mut runtime = tokio::select! {
        r = start => r?,
        _ = shutdown_signal() => return Ok(()),
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = match listener {
        Some(listener) => {
            let api = crate::http::Api {
                runtime: runtime.handle(),
                roster: std::sync::Arc::new(cfg.roster.clone()),
                max_payload_bytes: cfg.settings.bus.max_payload_bytes,
                result_ttl: cfg.settings.bus.result_ttl,
            };
            let server = crate::http::serve(listener, api, async {
                let _ = http_stopped.await;
            });
            Some(tokio::spawn(async move {
                if let Err(e) = server.await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            }))
        }
        None => None,
    };
    crate::systemd::ready();
    let watchdog = crate::systemd::spawn_watchdog(runtime.handle());
    tokio::select! {
        ended = runtime.wait() => {
            return ended.map_err(|reason| anyhow!("the actor tree stopped: {reason}"));
        }
        _ = shutdown_signal() => {
            tracing::info!("shutdown signal received; stopping");
        }
    }
    crate::systemd::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = stop_http.send(());
    if let Some(h) = http {
        let _ = h.await;
    }
    runtime.shutdown().await.map_err(|reason| anyhow!("the actor tree stopped: {reason}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Prepare the ledger and start the actor tree, retrying with capped backoff while Redis is unreachable
/// or still loading its data (`LOADING`): a node started during a Redis restart waits, it does not exit.
async fn start_until_ready(cfg: &ServiceConfig, bus: Bus, url: Option<&str>) -> Result<Runtime> {
    let notifier = Notifier::start(cfg.payments.notify.clone());
    let schedule = cfg.settings.bus.reconnect;
    let mut failures = 0u32;
    loop {
        let ledger = match (&bus, url) {
            (Bus::Redis(_), Some(url)) => match RedisLedger::connect(url).await {
                Ok(l) => Ledger::Redis(l),
                Err(LedgerError::Redis(e)) if BusError::Redis(e.clone()).is_transient() => {
                    failures = failures.saturating_add(1);
                    let delay = schedule.delay_random(failures);
                    tracing::warn!(error = %e, ?delay, "payment ledger unreachable at start-up; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
            _ => Ledger::Memory(MemoryLedger::new()),
        };
        let authority = Authority::new(cfg.payments.clone(), ledger, Some(notifier.clone()));
        let started = Runtime::start_with_payments(
            bus.clone(),
            cfg.settings.clone(),
            cfg.roster.clone(),
            ExecutorRegistry::builtin(),
            Some(authority),
        )
        .await;
        match started {
            Ok(runtime) => return Ok(runtime),
            Err(RuntimeError::Bus(e)) if e.is_transient() => {
                failures = failures.saturating_add(1);
                let delay = schedule.delay_random(failures);
                tracing::warn!(error = %e, ?delay, "Redis not ready at start-up (unreachable or loading); retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Keep trying to reach Redis at start-up with capped backoff: a node that starts before Redis (or
/// during an outage) waits instead of crash-looping.
async fn connect_with_backoff(url: &str, cfg: &ServiceConfig) -> Result<Bus> {
    let schedule = cfg.settings.bus.reconnect;
    let mut failures = 0u32;
    loop {
        match RedisBus::connect(url, schedule).await {
            Ok(b) => return Ok(Bus::Redis(b)),
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = schedule.delay_random(failures);
                tracing::warn!(url = %redact(url), error = %e, ?delay, "cannot reach Redis; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
