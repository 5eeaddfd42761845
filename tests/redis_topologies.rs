//! The runtime on Redis as it is deployed for availability and scale: a Sentinel-managed master and
//! replica that fail over under load (with `WAIT`-confirmed publishes), and a 3-master Redis Cluster
//! whose topics live on different shards, including a FLUSHALL while serving. Every server is a real
//! `redis-server` started by `genesis-testkit`; every wait is a condition with a deadline.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_actors::bus::redis::{RedisBus, Replication};
use genesis_actors::bus::{keys, Bus, TaskRecord, TaskStatus};
use genesis_actors::connection::{Connector, RedisOptions, RedisTarget, Topology};
use genesis_actors::events::RuntimeEvent;
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::runtime::Runtime;
use genesis_actors::task::TaskEnvelope;
use genesis_testkit::{wait_blocking, RedisCluster, SentinelSet};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{agent, eventually, fast_settings, final_record, publish, roster, topic, TTL};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::broadcast::Receiver;

const WAIT: Duration = Duration::from_secs(30);
/// Generous: tasks in flight during a failover finish only once the new master has a replica again.
const FINAL_WAIT: Duration = Duration::from_secs(60);
const FAILOVER_DEADLINE: Duration = Duration::from_secs(60);

/// Logs of the node under test, filtered by `RUST_LOG` (errors only by default).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// A bus on `url` through a [`Connector`], as the node builds it.
async fn open(url: &str, replication: Replication, topology: Topology) -> Bus {
    let opts = RedisOptions { url: Some(url.to_string().into()), ..Default::default() };
    let target = RedisTarget::resolve(&opts, "bus.redis_url").expect("a valid Redis URL");
    assert_eq!(target.topology(), topology, "{url}");
    let connector = Connector::new(target, fast_settings("x").bus.reconnect).expect("connector");
    Bus::Redis(RedisBus::open(connector, replication).await.expect("connect"))
}

async fn start(bus: &Bus, node_id: &str, agents: &[&str], concurrency: usize) -> Runtime {
    let specs = agents.iter().map(|a| agent(a, concurrency, 3)).collect();
    Runtime::start(bus.clone(), fast_settings(node_id), roster(specs), ExecutorRegistry::builtin())
        .await
        .expect("runtime starts")
}

/// Every event so far; `RootGaveUp` fails the test. A lagged receiver only skips old events.
fn assert_root_never_gave_up(events: &mut Receiver<RuntimeEvent>) {
    loop {
        match events.try_recv() {
            Ok(e) => assert!(!matches!(e, RuntimeEvent::RootGaveUp { .. }), "the root gave up: {e:?}"),
            Err(TryRecvError::Lagged(_)) => continue,
            Err(_) => return,
        }
    }
}

/// The runtime is still whole: the root never gave up, and it stops cleanly.
async fn still_up(runtime: Runtime, mut events: Receiver<RuntimeEvent>) {
    assert_root_never_gave_up(&mut events);
    runtime.shutdown().await.expect("the node stops cleanly: it never gave up");
}

/// Publish `n` tasks to each topic and wait until every one has succeeded.
async fn run_tasks(bus: &Bus, topics: &[&str], n: usize) -> Vec<TaskEnvelope> {
    let mut envs = Vec::new();
    for i in 0..n {
        for t in topics {
            envs.push(publish(bus, t, json!({"i": i, "simulate": {"sleep_ms": 5}})).await);
        }
    }
    for env in &envs {
        let r = final_record(bus, env, WAIT).await;
        assert_eq!(r.status, TaskStatus::Succeeded, "task {} on {}: {r:?}", env.task_id, env.topic);
    }
    envs
}

// ---------------------------------------------------------------------------------------------------
// Sentinel

/// Where the test is relative to the failover.
const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const AFTER: u8 = 2;
const PHASES: [&str; 3] = ["before the kill", "during the outage", "after the failover"];

#[derive(Default)]
struct Ledger {
    /// Tasks whose publish returned Ok, with the phase the Ok arrived in.
    acked: Vec<(TaskEnvelope, u8)>,
    /// Failed publish attempts per phase (each is retried with the same task id).
    errors: [u64; 3],
    /// The first error seen in each phase, for the report.
    first_error: [Option<String>; 3],
}

/// Wait until every acknowledged task has a final record; on timeout, say which did not and what
/// their records (if any) say, so a lost publish is told apart from a stuck one.
async fn final_records(bus: &Bus, acked: &[(TaskEnvelope, u8)], deadline: Duration) -> Result<Vec<TaskRecord>, String> {
    let end = Instant::now() + deadline;
    let mut records: Vec<Option<TaskRecord>> = vec![None; acked.len()];
    loop {
        for ((env, _), slot) in acked.iter().zip(records.iter_mut()) {
            if slot.as_ref().is_some_and(|r| r.status.is_final()) {
                continue;
            }
            if let Ok(r) = bus.task(&env.topic, &env.task_id.to_string()).await {
                *slot = r;
            }
        }
        let open: Vec<usize> =
            (0..acked.len()).filter(|i| !records[*i].as_ref().is_some_and(|r| r.status.is_final())).collect();
        if open.is_empty() {
            return Ok(records.into_iter().flatten().collect());
        }
        if Instant::now() >= end {
            let stats = bus.stats(&acked[open[0]].0.topic).await;
            let missing = open.iter().filter(|i| records[**i].is_none()).count();
            let detail: Vec<String> = open
                .iter()
                .take(10)
                .map(|i| {
                    let (env, phase) = &acked[*i];
                    format!("#{i} {} (acknowledged {}): {:?}", env.task_id, PHASES[*phase as usize], records[*i])
                })
                .collect();
            return Err(format!(
                "{} of {} acknowledged tasks have no final status after {deadline:?} ({missing} have no record at all); \
                 topic stats {stats:?}; first ones:\n{}",
                open.len(),
                acked.len(),
                detail.join("\n")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the killed master's process comes back (it must: with `replicas: 1` nothing is acknowledged
/// until the new master has a replica again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Once the node's heartbeat and its fetcher have reached the new master.
    AfterTheNodeFollowed,
    /// As soon as the sentinels have elected the new master, as a supervisor (systemd,
    /// Kubernetes) restarts a crashed Redis. It comes back as a master with its pre-crash data until
    /// Sentinel demotes it (seconds later).
    AtOnce,
}

/// Data commands (as `INFO commandstats` names them) a genesis node sends; the sentinels send none.
const NODE_COMMANDS: [&str; 12] =
    ["evalsha", "eval", "xreadgroup", "xadd", "xack", "xpending", "set", "zadd", "hgetall", "hset", "wait", "del"];

/// Calls of each command in `names` (that was called at all) in an `INFO commandstats` text.
fn calls_of(commandstats: &str, names: &[&str]) -> BTreeMap<String, u64> {
    commandstats
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls = rest.split(',').next()?.parse::<u64>().ok()?;
            names.contains(&name).then(|| (name.to_string(), calls))
        })
        .collect()
}

/// Watches the restarted old master from its start until Sentinel has demoted it (or 30 s), and
/// returns the node's data commands it served while it still claimed to be master (its data is
/// then stale: whatever it accepts is discarded when it resynchronises from the new master).
fn watch_stale_master(port: u16) -> std::thread::JoinHandle<BTreeMap<String, u64>> {
    std::thread::spawn(move || {
        let url = format!("redis://127.0.0.1:{port}/");
        let mut served = BTreeMap::new();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            let probe = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut c| {
                    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut c)?;
                    let role: String = redis::from_redis_value(role.into_iter().next().unwrap_or(redis::Value::Nil))?;
                    let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut c)?;
                    Ok((role, stats))
                });
            match probe {
                Ok((role, _)) if role != "master" => break,
                Ok((_, stats)) => served = calls_of(&stats, &NODE_COMMANDS),
                Err(_) => {}
            }
            // Sampling interval of a watcher thread, not synchronisation.
            std::thread::sleep(Duration::from_millis(20));
        }
        served
    })
}

/// Publish continuously through a Sentinel failover, with `WAIT 1`, and check that every publish that
/// returned Ok ends `succeeded` or `dead`, the node never wrote to a stale master, and the runtime
/// never gave up.
async fn failover_keeps_every_acknowledged_publish(restart: Restart) {
    const AGENT: &str = "genesis.build";
    init_logs();
    let started = Instant::now();
    let mut set = tokio::task::block_in_place(|| SentinelSet::start("genesis-master"));
    let replication = Replication { replicas: 1, timeout: Duration::from_secs(2) };
    let bus = open(&set.url(), replication, Topology::Sentinel).await;
    let runtime = start(&bus, "sentinel-node", &[AGENT], 4).await;
    let events = runtime.subscribe();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bus, ledger, phase, stop) = (bus.clone(), ledger.clone(), phase.clone(), stop.clone());
        tokio::spawn(async move {
            let mut retry: Option<TaskEnvelope> = None;
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let env = retry.take().unwrap_or_else(|| {
                    i += 1;
                    TaskEnvelope::new(
                        topic(AGENT),
                        support::tenant("tenant-test"),
                        json!({"i": i, "simulate": {"sleep_ms": 20}}),
                    )
                });
                let outcome = match tokio::time::timeout(Duration::from_secs(10), bus.publish(&env, TTL)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("publish did not return within 10s".to_string()),
                };
                let now = phase.load(Ordering::SeqCst);
                {
                    let mut l = ledger.lock().expect("ledger");
                    match outcome {
                        Ok(_) => l.acked.push((env, now)),
                        Err(e) => {
                            // Never acknowledged: try the same task again (publish is idempotent per id).
                            l.errors[now as usize] += 1;
                            l.first_error[now as usize].get_or_insert(e);
                            retry = Some(env);
                        }
                    }
                }
                // Pacing, not synchronisation.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let acked = |n: usize| {
        let ledger = ledger.clone();
        move || {
            let got = ledger.lock().expect("ledger").acked.len();
            async move { (got >= n).then_some(got) }
        }
    };

    eventually(WAIT, "100 acknowledged publishes before the failover", acked(100)).await;
    let old_master = set.master_port();
    phase.store(OUTAGE, Ordering::SeqCst);
    let outage_started = Instant::now();
    let (new_master, stale) = tokio::task::block_in_place(|| {
        set.kill_master();
        let new_master = set.wait_failover(old_master, FAILOVER_DEADLINE);
        if restart == Restart::AfterTheNodeFollowed {
            let server = set.servers().iter().find(|s| s.port() == new_master).expect("the new master is ours");
            server.cli(&["CONFIG", "RESETSTAT"]);
            wait_blocking(WAIT, "the node's heartbeat and fetcher to reach the new master", || {
                let calls = calls_of(&server.cli(&["INFO", "commandstats"]), &NODE_COMMANDS);
                (calls.contains_key("set") && calls.contains_key("xreadgroup")).then_some(())
            });
        }
        set.restart_killed();
        (new_master, watch_stale_master(old_master))
    });
    phase.store(AFTER, Ordering::SeqCst);
    let outage = outage_started.elapsed();
    eventually(Duration::from_secs(120), "300 acknowledged publishes in total", acked(300)).await;
    stop.store(true, Ordering::SeqCst);
    publisher.await.expect("the publisher task");
    let stale = tokio::task::block_in_place(|| stale.join()).expect("the stale-master watcher");

    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    let per_phase = |p: u8| ledger.acked.iter().filter(|(_, q)| *q == p).count();
    eprintln!(
        "sentinel failover ({restart:?}): master {old_master} -> {new_master}, outage (kill to failover) {outage:?}, \
         total {:?}",
        started.elapsed()
    );
    for p in [BEFORE, OUTAGE, AFTER] {
        eprintln!(
            "  {}: {} acknowledged publishes, {} failed publish attempts (first: {})",
            PHASES[p as usize],
            per_phase(p),
            ledger.errors[p as usize],
            ledger.first_error[p as usize].as_deref().unwrap_or("-")
        );
    }
    eprintln!("  commands the restarted old master served while it still claimed to be master: {stale:?}");
    let stale_writes = (!stale.is_empty()).then(|| {
        format!(
            "the node sent {stale:?} to the restarted old master {old_master} while it was a stale master (the \
             sentinels named {new_master}); Sentinel discards those writes when it demotes that server"
        )
    });
    let records = match final_records(&bus, &ledger.acked, FINAL_WAIT).await {
        Ok(records) => records,
        Err(lost) => panic!("{lost}\n{}", stale_writes.unwrap_or_default()),
    };
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for ((env, _), r) in ledger.acked.iter().zip(&records) {
        assert!(
            matches!(r.status, TaskStatus::Succeeded | TaskStatus::Dead),
            "acknowledged task {} ended {:?}: {r:?}",
            env.task_id,
            r.status
        );
        *statuses.entry(r.status.as_str()).or_default() += 1;
    }
    eprintln!("  final statuses of the {} acknowledged tasks: {statuses:?}", ledger.acked.len());
    assert!(ledger.acked.len() >= 300);
    // Writes can reach a restarted old master for up to a second (until the node's Sentinel watcher
    // sees the sentinels name another master): they are never acknowledged (WAIT finds no replica) or,
    // for outcomes, replayed by the orphan sweep once lost — what the assertions above prove.
    if let Some(w) = stale_writes {
        eprintln!("  note: {w}");
    }
    still_up(runtime, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_every_acknowledged_publish() {
    failover_keeps_every_acknowledged_publish(Restart::AfterTheNodeFollowed).await;
}

/// The old master restarted at once (as systemd would): for up to a second it claims to be master and
/// the node may write to it; nothing acknowledged is lost (the Sentinel watcher moves the node to the
/// new master, the orphan sweep replays any outcome the demotion threw away, and `begin` writes no
/// record on the new master for an entry read from the stale one — such a record would make the
/// publisher's retry of that task a "duplicate" with no entry behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_old_master_restarting_at_once_loses_nothing_acknowledged() {
    failover_keeps_every_acknowledged_publish(Restart::AtOnce).await;
}

// ---------------------------------------------------------------------------------------------------
// Cluster

/// Roster topics to spread over the shards.
const TOPICS: [&str; 6] =
    ["genesis.build", "genesis.qa", "genesis.seo", "genesis.deploy", "genesis.email", "genesis.analytics"];

async fn start_cluster() -> RedisCluster {
    tokio::task::spawn_blocking(|| RedisCluster::start(3)).await.expect("cluster start-up")
}

/// The port of the master that serves `key`'s slot (`CLUSTER KEYSLOT` and `CLUSTER NODES`).
fn owner_port(cluster: &mut RedisCluster, key: &str) -> u16 {
    let node = cluster.node(0);
    let slot: u16 = node.cli(&["CLUSTER", "KEYSLOT", key]).parse().expect("a slot number");
    let nodes = node.cli(&["CLUSTER", "NODES"]);
    for line in nodes.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || !f[2].contains("master") {
            continue;
        }
        let serves = f[8..].iter().filter(|r| !r.starts_with('[')).any(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
        });
        if serves {
            let addr = f[1].split('@').next().unwrap_or_default();
            return addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a node port");
        }
    }
    panic!("no master serves slot {slot} of {key}:\n{nodes}");
}

/// Topic → the port of the master holding its keys; checks the stream really lives there.
fn shard_map(cluster: &mut RedisCluster, topics: &[&str]) -> BTreeMap<String, u16> {
    let ports = cluster.ports();
    let mut map = BTreeMap::new();
    for t in topics {
        let key = keys::stream(&topic(t));
        let port = owner_port(cluster, &key);
        let i = ports.iter().position(|p| *p == port).expect("one of our nodes");
        assert_eq!(cluster.node(i).cli(&["EXISTS", &key]), "1", "{key} lives on the master at {port}");
        map.insert(t.to_string(), port);
    }
    map
}

/// Calls of `command` on every node since the last `CONFIG RESETSTAT`.
fn command_calls(cluster: &mut RedisCluster, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    (0..cluster.ports().len())
        .map(|i| {
            let stats = cluster.node(i).cli(&["INFO", "commandstats"]);
            stats
                .lines()
                .find_map(|l| l.trim().strip_prefix(&prefix))
                .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_runs_tasks_across_shards() {
    let started = Instant::now();
    let mut cluster = start_cluster().await;
    tokio::task::block_in_place(|| {
        for i in 0..cluster.ports().len() {
            cluster.node(i).cli(&["CONFIG", "RESETSTAT"]);
        }
    });
    let bus = open(&cluster.url(), Replication::default(), Topology::Cluster).await;
    let runtime = start(&bus, "cluster-node", &TOPICS, 2).await;
    let events = runtime.subscribe();

    // The runtime created every topic's stream; they are spread over the masters.
    let shards = tokio::task::block_in_place(|| shard_map(&mut cluster, &TOPICS));
    let masters: BTreeSet<u16> = shards.values().copied().collect();
    eprintln!("cluster: topic -> master port: {shards:?}");
    assert!(masters.len() >= 2, "the topics must live on at least two masters: {shards:?}");

    let envs = run_tasks(&bus, &TOPICS, 10).await;
    assert_eq!(envs.len(), 10 * TOPICS.len());

    let nodes = eventually(WAIT, "live_nodes lists this node", || async {
        bus.live_nodes().await.ok().filter(|n| n.iter().any(|(id, _)| id == "cluster-node"))
    })
    .await;
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    for t in TOPICS {
        let tp = topic(t);
        let stats = eventually(WAIT, &format!("{t}: nothing pending, nothing lagging"), || async {
            bus.stats(&tp).await.ok().filter(|s| s.pending == 0 && s.lag == 0)
        })
        .await;
        assert_eq!(stats.topic, t);
        assert_eq!((stats.dlq, stats.retrying), (0, 0), "{stats:?}");
        assert!(stats.consumers >= 1, "{t}: the agent's consumer is registered: {stats:?}");
    }
    let scans = tokio::task::block_in_place(|| command_calls(&mut cluster, "scan"));
    assert_eq!(scans, 0, "nothing may SCAN on a cluster (a SCAN sees one shard only)");
    still_up(runtime, events).await;
    eprintln!("cluster across shards: {} tasks on {} masters in {:?}", envs.len(), masters.len(), started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_survives_flushall() {
    let started = Instant::now();
    let mut cluster = start_cluster().await;
    let bus = open(&cluster.url(), Replication::default(), Topology::Cluster).await;
    let runtime = start(&bus, "flush-node", &TOPICS, 2).await;
    let events = runtime.subscribe();
    let shards = tokio::task::block_in_place(|| shard_map(&mut cluster, &TOPICS));
    assert!(shards.values().collect::<BTreeSet<_>>().len() >= 2, "{shards:?}");

    let before = run_tasks(&bus, &TOPICS, 5).await;
    tokio::task::block_in_place(|| cluster.flushall());
    // Everything is gone, results included: the flush really happened on every shard.
    for env in &before {
        assert!(bus.task(&env.topic, &env.task_id.to_string()).await.expect("read").is_none());
    }
    // New work runs: the node recreates the consumer groups it lost.
    let after = run_tasks(&bus, &TOPICS, 5).await;
    eventually(WAIT, "the node's heartbeat is back after the flush", || async {
        bus.live_nodes().await.ok().filter(|n| n.iter().any(|(id, _)| id == "flush-node"))
    })
    .await;
    for t in TOPICS {
        let tp = topic(t);
        eventually(WAIT, &format!("{t}: nothing pending after the flush"), || async {
            bus.stats(&tp).await.ok().filter(|s| s.pending == 0 && s.lag == 0 && s.consumers >= 1)
        })
        .await;
    }
    still_up(runtime, events).await;
    eprintln!("cluster flushall: {} tasks before, {} after, in {:?}", before.len(), after.len(), started.elapsed());
}

/// A short chaos run on a real 3-master cluster: two `genesis serve` processes share the work; one is
/// SIGKILLed and restarted mid-run, and one cluster master is SIGKILLed and restarted (append-only file,
/// fsync always). Every task ends succeeded, nothing stays pending, and both nodes stop cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_chaos_node_and_master_killed() {
    use std::process::{Child, Command, Stdio};
    let mut cluster = start_cluster().await;
    let url = cluster.url();
    let dir = tempfile::tempdir().expect("dir");
    let config = support::write_test_config(dir.path(), &support::shipped_roster());
    let spawn = |id: &str| -> Child {
        let log = std::fs::File::create(dir.path().join(format!("{id}-{}.log", support::free_port()))).expect("log");
        Command::new(support::genesis_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--node-id", id, "--redis-url", &url])
            .env_remove("GENESIS_REDIS_URL")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn genesis serve")
    };
    let mut n1 = spawn("chaos-1");
    let mut n2 = spawn("chaos-2");
    let bus = open(&url, Replication::default(), Topology::Cluster).await;
    eventually(WAIT, "both nodes are live", || async {
        bus.live_nodes().await.ok().filter(|n| n.len() == 2).map(|_| ())
    })
    .await;
    let topics = ["genesis.build", "genesis.deploy", "genesis.qa", "genesis.seo", "genesis.content", "genesis.email"];
    let mut envs = Vec::new();
    for i in 0..240usize {
        // A mix: plain, fails once then succeeds, crashes its worker once then succeeds.
        let simulate = match i % 3 {
            0 => json!({"sleep_ms": 20}),
            1 => json!({"sleep_ms": 20, "fail_attempts": 1}),
            _ => json!({"sleep_ms": 20, "panic_deliveries": 1}),
        };
        envs.push(publish(&bus, topics[i % topics.len()], json!({"i": i, "simulate": simulate})).await);
        if i == 80 {
            let _ = n1.kill();
            let _ = n1.wait();
            n1 = spawn("chaos-1");
        }
        if i == 160 {
            tokio::task::block_in_place(|| {
                cluster.node(1).kill();
                cluster.node(1).restart();
                cluster.wait_ok(Duration::from_secs(30));
            });
        }
    }
    for env in &envs {
        let r = final_record(&bus, env, Duration::from_secs(90)).await;
        assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
        assert!(r.attempts <= 4, "attempts bounded: {r:?}");
    }
    for t in topics {
        let s = bus.stats(&topic(t)).await.expect("stats");
        assert_eq!((s.pending, s.lag, s.dlq), (0, 0, 0), "{t}: nothing pending, lagging or dead");
    }
    for (name, child) in [("chaos-1", &mut n1), ("chaos-2", &mut n2)] {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).stdout(Stdio::null()).status();
        let status = wait_blocking(WAIT, "the node exits after SIGTERM", || child.try_wait().ok().flatten());
        assert!(status.success(), "{name} exits 0: {status}");
    }
}
