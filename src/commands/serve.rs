//! `genesis serve`: run a node until SIGTERM/SIGINT, or until the root supervisor gives up (then exit
//! non-zero so systemd restarts the process).
//!
//! Start-up order: check the Redis settings (a bad URL or unreadable TLS file stops the start, naming
//! the key), bind HTTP and serve `/healthz` and `/readyz` at once, then reach Redis. While Redis is
//! unreachable or loading the node waits with backoff and `/readyz` says "waiting for Redis: <reason>";
//! if Redis refuses the credentials or the TLS handshake, the start fails with the reason (a restart
//! cannot fix that, an operator must).

use crate::cli::RedisOpt;
use crate::config::ServiceConfig;
use crate::http::auth::{AuthMode, AuthSettings};
use crate::http::host::AllowedHosts;
use crate::http::NodeSlot;
use anyhow::{anyhow, bail, Result};
use genesis_actors::apikey::KeyStore;
use genesis_actors::bus::memory::MemoryBus;
use genesis_actors::bus::redis::RedisBus;
use genesis_actors::bus::Bus;
use genesis_actors::bus::BusError;
use genesis_actors::connection::{Connector, ErrorClass};
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::memory::MemoryLedger;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::Ledger;
use genesis_actors::payments::ledger::LedgerError;
use genesis_actors::payments::notify::Notifier;
use genesis_actors::policy::retry::Retry;
use genesis_actors::runtime::{Runtime, RuntimeError};

pub async fn run(
    mut cfg: ServiceConfig,
    redis: RedisOpt,
    node_id: Option<String>,
    http_addr: Option<String>,
    metrics_addr: Option<String>,
) -> Result<()> {
    if let Some(id) = node_id {
        cfg.settings.node_id = crate::config::validate_node_id("--node-id", &id)?;
    }
    let http_key = match http_addr {
        Some(addr) => {
            cfg.http_addr = crate::config::validate_http_addr("--http-addr", &addr)?;
            "--http-addr"
        }
        None => "http.addr",
    };
    let metrics_key = match metrics_addr {
        Some(addr) => {
            cfg.http.metrics_addr = crate::config::validate_http_addr("--metrics-addr", &addr)?;
            "--metrics-addr"
        }
        None => "http.metrics_addr",
    };
    if let (AuthMode::Off, Some(addr)) = (cfg.http.auth.mode, cfg.http_addr) {
        crate::config::check_open_auth(addr, http_key)?;
    }
    let connector = match super::redis_target(&cfg, &redis)? {
        Some(target) => Some(super::connector(&cfg, target)?),
        None => None,
    };
    let slot = NodeSlot::default();
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    let auth = match cfg.http_addr {
        Some(_) => auth_settings(&cfg, connector.is_none())?,
        None => cfg.http.auth.clone(),
    };
    let api = crate::http::Api {
        node: slot.clone(),
        roster: std::sync::Arc::new(cfg.roster.clone()),
        max_payload_bytes: cfg.settings.bus.max_payload_bytes,
        result_ttl: cfg.settings.bus.result_ttl,
        auth: std::sync::Arc::new(auth),
        metrics_here: cfg.http.metrics_addr.is_none(),
    };
    let mut http = Vec::new();
    if let Some(addr) = cfg.http_addr {
        let hosts = AllowedHosts::resolve(cfg.http.allowed_hosts.as_deref(), addr);
        http.push(listen(addr, http_key, crate::http::router(api.clone(), hosts), &cfg, &http_stopped).await?);
    }
    if let Some(addr) = cfg.http.metrics_addr {
        http.push(listen(addr, metrics_key, crate::http::metrics_router(api), &cfg, &http_stopped).await?);
    }
    let started = async {
        let bus = match &connector {
            Some(c) => connect_with_backoff(c, &cfg, &slot).await?,
            None => {
                tracing::warn!("no Redis URL configured: running on the in-process bus. It is NOT durable: pending tasks are lost when this process exits. Set bus.redis_url or --redis-url for production.");
                Bus::Memory(MemoryBus::new())
            }
        };
        start_until_ready(&cfg, bus, connector.as_ref(), &slot).await
    };
    let mut runtime = tokio::select! {
        r = started => r?,
        _ = shutdown_signal() => return Ok(()),
    };
    slot.set(runtime.handle());
    if cfg.http_addr.is_some() {
        warn_when_no_key_exists(&cfg, runtime.handle().bus()).await;
    }
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
    // Stop HTTP and drain the tree together: a slow HTTP client must not delay the drain (HTTP gives
    // requests in flight a few seconds, then closes them).
    let _ = stop_http.send(true);
    let http_done = async {
        for h in http {
            let _ = h.await;
        }
    };
    let (_, drained) = tokio::join!(http_done, runtime.shutdown());
    drained.map_err(|reason| anyhow!("the actor tree stopped: {reason}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Bind `addr` (named `key` in the error) and serve `router` on it until `stop` turns true.
async fn listen(
    addr: std::net::SocketAddr,
    key: &str,
    router: axum::Router,
    cfg: &ServiceConfig,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow!("{key} = \"{addr}\": cannot listen ({e}); choose a free address or set it to \"\" to disable it")
    })?;
    let what = if key.contains("metrics") { "/metrics (open)" } else { "/healthz, /readyz, /v1/…" };
    tracing::info!(%addr, "HTTP listening: {what}");
    let mut stop = stop.clone();
    let server = crate::http::serve(listener, router, cfg.http_limits, async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }))
}

/// How the API authenticates on this node, said once in the log. On the embedded bus with no key in
/// `[[http.api_keys]]`, the first-run admin key of `http.admin_key_file` is accepted (made first when
/// missing; its secret is never logged).
fn auth_settings(cfg: &ServiceConfig, embedded: bool) -> Result<AuthSettings> {
    let mut auth = cfg.http.auth.clone();
    if auth.mode == AuthMode::Off {
        tracing::warn!(
            "http.auth = \"off\": no API key is asked for; every caller of this loopback address is an admin"
        );
        return Ok(auth);
    }
    if embedded && auth.configured.is_empty() {
        let path = &cfg.http.admin_key_file;
        let (key, made) = crate::http::admin_key::ensure(path)?;
        let shown = path.display();
        if made {
            tracing::warn!(file = %shown, "no API key configured: made an admin key for this node and wrote it to {shown} (mode 0600, kept for later starts; delete it to have a new one made). Use it as: curl -H \"Authorization: Bearer $(cat {shown})\" …");
        } else {
            tracing::info!(file = %shown, "the admin key in {shown} is accepted (curl -H \"Authorization: Bearer $(cat {shown})\" …)");
        }
        auth.configured.push(key);
    }
    Ok(auth)
}

/// On Redis, a node with no key anywhere answers every `/v1` request 401: say what to do, once.
async fn warn_when_no_key_exists(cfg: &ServiceConfig, bus: &Bus) {
    if cfg.http.auth.mode == AuthMode::Off || !cfg.http.auth.configured.is_empty() || matches!(bus, Bus::Memory(_)) {
        return;
    }
    if let Ok(keys) = KeyStore::for_bus(bus).list().await {
        if keys.iter().all(|k| k.revoked_at.is_some()) {
            tracing::warn!("no API key exists yet: every /v1 request is refused (401) until you make one with `genesis apikey create --tenant T [--role admin]`");
        }
    }
}

/// Prepare the ledger and start the actor tree, retrying with capped backoff while Redis is unreachable
/// or still loading its data (`LOADING`): a node started during a Redis restart waits, it does not exit.
async fn start_until_ready(
    cfg: &ServiceConfig,
    bus: Bus,
    connector: Option<&Connector>,
    slot: &NodeSlot,
) -> Result<Runtime> {
    let notifier = Notifier::start(cfg.payments.notify.clone());
    let mut retry = Retry::new(cfg.settings.bus.reconnect);
    loop {
        let ledger = match (&bus, connector) {
            (Bus::Redis(_), Some(connector)) => match RedisLedger::open(connector).await {
                Ok(l) => Ledger::Redis(l),
                Err(LedgerError::Redis(e)) if BusError::Redis(e.clone()).is_transient() => {
                    let delay = retry.failed().delay;
                    let e = BusError::Redis(e);
                    slot.set_waiting(format!("waiting for Redis (payment ledger): {e}"));
                    tracing::warn!(error = %e, ?delay, "Redis not ready at start-up for the payment ledger (unreachable or loading); retrying");
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
            ExecutorRegistry::node(cfg.simulated_steering),
            Some(authority),
        )
        .await;
        match started {
            Ok(runtime) => return Ok(runtime),
            Err(RuntimeError::Bus(e)) if e.is_transient() => {
                let delay = retry.failed().delay;
                slot.set_waiting(format!("waiting for Redis: {e}"));
                tracing::warn!(error = %e, ?delay, "Redis not ready at start-up (unreachable or loading); retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Keep trying to reach Redis at start-up with capped backoff: a node that starts before Redis (or
/// during an outage) waits instead of crash-looping. A refusal that waiting cannot fix (credentials,
/// TLS trust, a Sentinel that does not know the master) ends the start with the reason.
async fn connect_with_backoff(connector: &Connector, cfg: &ServiceConfig, slot: &NodeSlot) -> Result<Bus> {
    let mut retry = Retry::new(cfg.settings.bus.reconnect);
    loop {
        match RedisBus::open(connector.clone(), cfg.replication).await {
            Ok(b) => return Ok(Bus::Redis(b)),
            Err(e) if e.class() == ErrorClass::Config => {
                bail!(
                    "Redis at {} refused this node: {e}. Check bus.redis_url (user and password), bus.password_file and bus.tls_ca_file / tls_cert_file / tls_key_file",
                    connector.shown()
                );
            }
            Err(e) => {
                let f = retry.failed();
                slot.set_waiting(format!("waiting for Redis at {}: {e}", connector.shown()));
                if f.log {
                    tracing::warn!(url = %connector.shown(), error = %e, delay = ?f.delay, "cannot reach Redis; retrying");
                }
                tokio::time::sleep(f.delay).await;
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
