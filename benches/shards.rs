//! How the runtime and the payment ledger scale from one Redis to a Redis Cluster, in one run: the same
//! workload on a standalone `redis-server` and on a 3-master cluster (both started by the test kit on
//! free loopback ports, persistence off), side by side.
//!
//! ```text
//! cargo bench --bench shards                                    # defaults (~1 minute after the build)
//! cargo bench --bench shards -- --tasks 30000 --topics 6 --concurrency 64 --decisions 30000 --tenants 12
//! ```
//!
//! - no-op tasks/s: `--tasks` no-op tasks spread evenly over `--topics` agents (a topic is one slot, so
//!   one shard: only several topics can use several shards), pre-published, then consumed by one node
//!   (`--concurrency` workers per agent); timed from the runtime's start until every stream has nothing
//!   pending or lagging, then every record is checked.
//! - payment decisions/s: `--decisions` approving intents over `--tenants` tenants (a tenant is one
//!   shard of the ledger), decided by one authority from 64 concurrent callers.
//!
//! On this 2-core machine the three cluster masters, the node and the bench share two cores, so the
//! cluster cannot show more than the cores allow; docs/BENCHMARKS.md says how to read the numbers.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{thousands, Report};
use genesis_actors::bus::redis::{RedisBus, Replication};
use genesis_actors::bus::{Bus, TaskStatus};
use genesis_actors::connection::{Connector, RedisOptions, RedisTarget};
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::Ledger;
use genesis_actors::payments::types::{Outcome, PaymentIntent};
use genesis_actors::policy::backoff::Backoff;
use genesis_actors::roster::{AgentSpec, Roster};
use genesis_actors::runtime::Runtime;
use genesis_actors::settings::RuntimeSettings;
use genesis_actors::task::{TaskEnvelope, TenantId, TopicName};
use genesis_testkit::{Persistence, RedisCluster};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(3600);

struct Opts {
    tasks: usize,
    topics: usize,
    concurrency: usize,
    decisions: usize,
    tenants: usize,
}

/// `cargo bench --bench shards -- [options]`.
#[derive(clap::Parser, Debug)]
#[command(about = "Tasks/s and payment decisions/s on one shard and on a 3-shard Redis Cluster")]
struct Args {
    /// Tasks per run.
    #[arg(long, default_value_t = 30_000)]
    tasks: usize,
    /// Topics the tasks are spread over.
    #[arg(long, value_parser = common::positive, default_value_t = 6)]
    topics: usize,
    /// Workers per agent.
    #[arg(long, value_parser = common::positive, default_value_t = 64)]
    concurrency: usize,
    /// Payment decisions per run.
    #[arg(long, default_value_t = 30_000)]
    decisions: usize,
    /// Tenants the decisions are spread over.
    #[arg(long, value_parser = common::positive, default_value_t = 12)]
    tenants: usize,
    /// Passed by `cargo bench` to harness = false targets.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    fn opts(self) -> Opts {
        Opts {
            tasks: self.tasks,
            topics: self.topics,
            concurrency: self.concurrency,
            decisions: self.decisions,
            tenants: self.tenants,
        }
    }
}

fn connector(url: &str) -> Connector {
    let opts = RedisOptions { url: Some(url.to_string().into()), ..Default::default() };
    let target = RedisTarget::resolve(&opts, "bus.redis_url").expect("target");
    Connector::new(target, Backoff::new(Duration::from_millis(20), Duration::from_secs(1), 2.0)).expect("connector")
}

/// Topic names of the roster, so the bench's topics are real agents' (spread over the slots).
fn topics(n: usize) -> Vec<TopicName> {
    let names = ["genesis.build", "genesis.deploy", "genesis.qa", "genesis.research", "genesis.spec", "genesis.seo"];
    (0..n)
        .map(|i| match names.get(i) {
            Some(t) => t.parse().expect("topic"),
            None => format!("genesis.bench{i}").parse().expect("topic"),
        })
        .collect()
}

async fn noop(url: &str, o: &Opts) -> (f64, usize) {
    let c = connector(url);
    let bus = Bus::Redis(RedisBus::open(c.clone(), Replication::default()).await.expect("bus"));
    let producer = Bus::Redis(RedisBus::open(c, Replication::default()).await.expect("bus"));
    let ts = topics(o.topics);
    let envs: Arc<Vec<TaskEnvelope>> = Arc::new(
        (0..o.tasks)
            .map(|i| TaskEnvelope::new(ts[i % ts.len()].clone(), TenantId::parse("bench").expect("tenant"), json!({})))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..128)
        .map(|_| {
            let (bus, envs, next) = (producer.clone(), envs.clone(), next.clone());
            tokio::spawn(async move {
                while let Some(e) = envs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    bus.publish(e, TTL).await.expect("publish");
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.expect("publisher");
    }
    let agents = ts
        .iter()
        .map(|t| AgentSpec {
            name: t.to_string(),
            topic: t.clone(),
            concurrency: o.concurrency,
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            executor: genesis_actors::roster::ExecutorSpec::Named("simulated".into()),
            rate: None,
            breaker: Default::default(),
            dlq: Default::default(),
        })
        .collect();
    let t0 = Instant::now();
    let rt = Runtime::start(
        bus.clone(),
        RuntimeSettings::defaults("bench-shards"),
        Roster { agents },
        ExecutorRegistry::builtin(),
    )
    .await
    .expect("runtime");
    loop {
        let mut left = 0;
        for t in &ts {
            let s = bus.stats(t).await.expect("stats");
            left += s.pending + s.lag;
        }
        if left == 0 || t0.elapsed() > Duration::from_secs(180) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = t0.elapsed();
    let _ = rt.shutdown().await;
    let mut ok = 0;
    for e in envs.iter() {
        if bus
            .task(&e.topic, &e.task_id.to_string())
            .await
            .ok()
            .flatten()
            .is_some_and(|r| r.status == TaskStatus::Succeeded)
        {
            ok += 1;
        }
    }
    (ok as f64 / wall.as_secs_f64(), ok)
}

async fn decisions(url: &str, o: &Opts) -> (f64, usize) {
    let ledger = RedisLedger::open(&connector(url)).await.expect("ledger");
    let known = (0..8).map(|i| format!("bench-agent-{i}")).collect::<BTreeSet<_>>();
    let settings = common::approving_settings(known, &["openai.com"]);
    let authority = Authority::new(settings, Ledger::Redis(ledger), None);
    let intents: Arc<Vec<PaymentIntent>> = Arc::new(
        (0..o.decisions)
            .map(|i| {
                let business = i % (o.tenants * 2);
                PaymentIntent {
                    agent_id: format!("bench-agent-{}", i % 8),
                    vendor: "openai.com".into(),
                    amount_cents: 100 + ((i * 37) % 700) as i64,
                    reason: "api credits".into(),
                    mandate_id: format!("shard-{i}"),
                    business_id: format!("bench-biz-{business}"),
                    tenant_id: TenantId::parse(&format!("bench-tenant-{}", business % o.tenants)).expect("tenant"),
                    task_id: None,
                    workflow: None,
                }
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let approved = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let (a, intents, next, approved) = (authority.clone(), intents.clone(), next.clone(), approved.clone());
            tokio::spawn(async move {
                while let Some(x) = intents.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if a.approve(x).await.is_ok_and(|d| d.outcome == Outcome::Approved) {
                        approved.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.await.expect("caller");
    }
    let wall = t0.elapsed();
    let n = approved.load(Ordering::Relaxed);
    (n as f64 / wall.as_secs_f64(), n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = <Args as clap::Parser>::parse().opts();
    let mut rep = Report { rows: Vec::new() };
    let single = tokio::task::spawn_blocking(common::redis).await.expect("redis-server");
    let cluster =
        tokio::task::spawn_blocking(|| RedisCluster::start_with(3, Persistence::None)).await.expect("cluster");
    for (name, url) in [("1 shard (standalone)", single.url()), ("3-shard cluster", cluster.url())] {
        let (rate, ok) = noop(&url, &o).await;
        rep.add(
            format!("no-op tasks/s, {name}, {} tasks over {} topics, C={}", o.tasks, o.topics, o.concurrency),
            format!("{} tasks/s ({ok} ok)", thousands(rate)),
            "",
            None,
        );
        let (rate, ok) = decisions(&url, &o).await;
        rep.add(
            format!("payment decisions/s, {name}, {} intents over {} tenants", o.decisions, o.tenants),
            format!("{} /s ({ok} approved)", thousands(rate)),
            "",
            None,
        );
    }
    rep.print();
}
