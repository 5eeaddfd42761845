//! What the benchmarks share: a private `redis-server` (from the test kit) on a free loopback port in
//! a temporary directory, with persistence off (the benches measure the runtime and Redis's command work, not
//! fsync). Never the shared Redis on 6379.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use genesis_actors::payments::notify::NotifySettings;
use genesis_actors::payments::policy::{FraudRules, PaymentRules};
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{Budgets, PaymentsSettings};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Payment settings under which every well-formed intent of the `known_agents` to `vendors` is
/// approved: budgets and velocity limits far above a run's totals; the other fraud rules keep their
/// defaults (structuring band 800..1000 cents, anomaly factor 10 over ≥ 5 samples).
#[allow(dead_code)] // each bench uses a different subset of this module
pub fn approving_settings(known_agents: BTreeSet<String>, vendors: &[&str]) -> PaymentsSettings {
    let high = 1u64 << 50;
    PaymentsSettings {
        rules: PaymentRules {
            fraud: FraudRules {
                velocity_max_count: 1_000_000_000,
                velocity_max_sum_cents: high,
                ..FraudRules::default()
            },
            known_agents,
            ..PaymentRules::default()
        },
        whitelist: Whitelist::new(&vendors.iter().map(|v| v.to_string()).collect::<Vec<_>>()).expect("whitelist"),
        budgets: Budgets {
            agent_daily_cents: high,
            business_total_cents: high,
            tenant_daily_cents: high,
            per_agent_daily: BTreeMap::new(),
            per_business_total: BTreeMap::new(),
            per_tenant_daily: BTreeMap::new(),
        },
        reservation_ttl: Duration::from_secs(3600),
        retention: Duration::from_secs(86_400),
        expiry_interval: Duration::from_secs(3600),
        reconcile_interval: Duration::from_secs(3600),
        token_key: None,
        notify: NotifySettings::default(),
    }
}

/// The bench's private Redis: the test kit's server (free port, own directory) with persistence off.
pub fn redis() -> genesis_testkit::RedisServer {
    genesis_testkit::RedisServer::builder().persistence(genesis_testkit::Persistence::None).start()
}

/// `12345.6` → `"12,346"`.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub struct Row {
    pub name: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
}

pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>, target: &str, met: Option<bool>) {
        let row = Row { name: name.into(), value: value.into(), target: target.into(), met };
        eprintln!("  {} = {}", row.name, row.value);
        self.rows.push(row);
    }

    pub fn print(&self) {
        let w0 = self.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(0).max(8);
        let w1 = self.rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(0).max(6);
        let w2 = self.rows.iter().map(|r| r.target.chars().count()).max().unwrap_or(0).max(6);
        println!();
        println!("{:<w0$}  {:>w1$}  {:<w2$}  met", "scenario", "result", "target");
        println!("{}", "-".repeat(w0 + w1 + w2 + 9));
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            println!("{:<w0$}  {:>w1$}  {:<w2$}  {met}", r.name, r.value, r.target);
        }
    }
}

/// A clap value parser for counts that must be at least 1.
pub fn positive(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("`{v}` is not a positive integer")),
    }
}

/// Publish all envelopes from `publishers` concurrent tokio tasks sharing the bus's connection
/// (concurrent EVALSHAs are pipelined on it). Returns the wall time.
#[allow(dead_code)] // not every bench publishes
pub async fn publish_all(
    bus: &genesis_actors::bus::Bus,
    envs: std::sync::Arc<Vec<genesis_actors::task::TaskEnvelope>>,
    publishers: usize,
    ttl: Duration,
) -> Duration {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let t0 = std::time::Instant::now();
    let handles: Vec<_> = (0..publishers.max(1))
        .map(|_| {
            let (bus, envs, next) = (bus.clone(), envs.clone(), next.clone());
            tokio::spawn(async move {
                while let Some(env) = envs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    bus.publish(env, ttl).await.expect("publish");
                }
            })
        })
        .collect();
    for h in handles {
        h.await.expect("publisher task");
    }
    t0.elapsed()
}
