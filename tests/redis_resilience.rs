//! Redis as people deploy it, and as it fails: TLS with a private CA and mutual TLS, ACL users with a
//! password file, and the errors that must never end a node (docs/semantics.md, "Redis errors"):
//! FLUSHALL and an empty restart while serving, OOM at `maxmemory`, `CLIENT PAUSE`. Configuration
//! errors (wrong password, bad URL) end `genesis serve` at start with the reason; HTTP answers before
//! Redis does. Every server is a real `redis-server` started by `genesis-testkit`.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_actors::bus::redis::{RedisBus, Replication};
use genesis_actors::bus::{Bus, BusError, TaskStatus};
use genesis_actors::connection::{Connector, ErrorClass, RedisOptions, RedisTarget};
use genesis_actors::events::RuntimeEvent;
use genesis_actors::executor::ExecutorRegistry;
use genesis_actors::runtime::Runtime;
use genesis_testkit::{RedisServer, Tls};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{agent, fast_settings, final_record, publish, roster};

const WAIT: Duration = Duration::from_secs(30);
const AGENT: &str = "genesis.build";

fn opts(url: &str) -> RedisOptions {
    RedisOptions { url: Some(url.to_string().into()), ..Default::default() }
}

async fn open(opts: &RedisOptions) -> Result<Bus, BusError> {
    let target = RedisTarget::resolve(opts, "bus.redis_url").expect("valid settings");
    let connector = Connector::new(target, fast_settings("x").bus.reconnect).expect("connector");
    Ok(Bus::Redis(RedisBus::open(connector, Replication::default()).await?))
}

async fn start(bus: &Bus) -> Runtime {
    Runtime::start(
        bus.clone(),
        fast_settings("res-node"),
        roster(vec![agent(AGENT, 4, 2)]),
        ExecutorRegistry::builtin(),
    )
    .await
    .expect("runtime starts")
}

/// Publish `n` tasks and wait until each has succeeded.
async fn run_tasks(bus: &Bus, n: usize, sleep_ms: u64) {
    let mut envs = Vec::new();
    for i in 0..n {
        envs.push(publish(bus, AGENT, json!({"i": i, "simulate": {"sleep_ms": sleep_ms}})).await);
    }
    for env in &envs {
        assert_eq!(final_record(bus, env, WAIT).await.status, TaskStatus::Succeeded, "task {}", env.task_id);
    }
}

/// The runtime is still whole: no actor failed because of Redis (so nothing was counted against a
/// restart intensity), the root never gave up, and it stops cleanly.
async fn still_up(runtime: Runtime, mut events: tokio::sync::broadcast::Receiver<RuntimeEvent>) {
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, RuntimeEvent::RootGaveUp { .. } | RuntimeEvent::ChildFailed { .. }),
            "a Redis error reached supervision: {e:?}"
        );
    }
    runtime.shutdown().await.expect("the node stops cleanly: it never gave up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let server = RedisServer::builder().tls(Tls::On).start();
    let files = server.tls_files().expect("tls files").clone();
    let mut o = opts(&server.url());
    assert!(o.url.is_some() && server.url().starts_with("rediss://"));
    // Without the CA the server's certificate is not trusted: a configuration error, not an outage.
    let untrusted = open(&o).await.err().expect("an unknown CA is refused");
    assert_eq!(untrusted.class(), ErrorClass::Config, "{untrusted}");
    o.tls_ca_file = Some(files.ca_cert.clone());
    let bus = open(&o).await.expect("connects over TLS with the private CA");
    let runtime = start(&bus).await;
    let events = runtime.subscribe();
    run_tasks(&bus, 5, 0).await;
    still_up(runtime, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls() {
    let server = RedisServer::builder().tls(Tls::Mutual).start();
    let files = server.tls_files().expect("tls files").clone();
    let mut o = opts(&server.url());
    o.tls_ca_file = Some(files.ca_cert.clone());
    let refused = open(&o).await.err().expect("without a client certificate the server refuses");
    assert_ne!(refused.class(), ErrorClass::Other, "{refused}");
    o.tls_cert_file = Some(files.client_cert.clone());
    o.tls_key_file = Some(files.client_key.clone());
    let bus = open(&o).await.expect("connects with the client certificate");
    let runtime = start(&bus).await;
    let events = runtime.subscribe();
    run_tasks(&bus, 5, 0).await;
    still_up(runtime, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_with_a_password_file() {
    let server = RedisServer::builder().acl_user("genesis", "s3cret-pw").start();
    let dir = tempfile::tempdir().expect("dir");
    let pw = dir.path().join("redis.pw");
    std::fs::write(&pw, "s3cret-pw\n").expect("write");
    let url = format!("redis://genesis@127.0.0.1:{}/", server.port());
    let mut o = opts(&url);
    o.password_file = Some(pw.clone());
    let bus = open(&o).await.expect("the ACL user logs in with the password from the file");
    run_tasks_on_fresh_runtime(&bus).await;
    std::fs::write(&pw, "not-it\n").expect("write");
    let wrong = open(&o).await.err().expect("a wrong password is refused");
    assert_eq!(wrong.class(), ErrorClass::Config, "{wrong}");
    assert!(!wrong.to_string().contains("not-it"), "the password leaked into the error: {wrong}");
}

async fn run_tasks_on_fresh_runtime(bus: &Bus) {
    let runtime = start(bus).await;
    let events = runtime.subscribe();
    run_tasks(bus, 3, 0).await;
    still_up(runtime, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_while_serving_loses_only_what_redis_lost() {
    let server = RedisServer::start();
    let bus = open(&opts(&server.url())).await.expect("connect");
    let runtime = start(&bus).await;
    let events = runtime.subscribe();
    run_tasks(&bus, 10, 0).await;
    // Tasks in flight when Redis forgets everything: their outcomes find no pending entry (fenced,
    // discarded); the node recreates the consumer group and goes on.
    for i in 0..4 {
        publish(&bus, AGENT, json!({"inflight": i, "simulate": {"sleep_ms": 300}})).await;
    }
    server.cli(&["FLUSHALL"]);
    run_tasks(&bus, 10, 0).await;
    still_up(runtime, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_while_serving() {
    let mut server = RedisServer::start();
    let bus = open(&opts(&server.url())).await.expect("connect");
    let runtime = start(&bus).await;
    let events = runtime.subscribe();
    run_tasks(&bus, 5, 0).await;
    for i in 0..4 {
        publish(&bus, AGENT, json!({"inflight": i, "simulate": {"sleep_ms": 300}})).await;
    }
    server.restart_empty();
    run_tasks(&bus, 10, 0).await;
    still_up(runtime, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_waits_then_resumes() {
    let server = RedisServer::start();
    let bus = open(&opts(&server.url())).await.expect("connect");
    let runtime = start(&bus).await;
    let events = runtime.subscribe();
    let running: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(publish(&bus, AGENT, json!({"i": i, "simulate": {"sleep_ms": 400}})).await);
        }
        v
    };
    // Every write now fails with OOM: the running tasks cannot write their outcomes.
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    let refused = bus
        .publish(
            &genesis_actors::task::TaskEnvelope::new(support::topic(AGENT), support::tenant("t"), json!({})),
            support::TTL,
        )
        .await
        .expect_err("a publish at maxmemory fails");
    assert_eq!(refused.class(), ErrorClass::Transient, "OOM is transient: {refused}");
    // The node's writes (heartbeat, outcomes) fail and are retried with backoff while memory is full;
    // then memory frees up and every task lands.
    support::eventually(WAIT, "the node sees OOM as transient and backs off", || async {
        let m = runtime.handle().metrics().encode();
        m.lines().any(|l| l.starts_with("genesis_redis_errors_total{class=\"transient\"}")).then_some(())
    })
    .await;
    server.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    for env in &running {
        assert_eq!(final_record(&bus, env, WAIT).await.status, TaskStatus::Succeeded);
    }
    run_tasks(&bus, 5, 0).await;
    still_up(runtime, events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_holds_then_resumes() {
    let server = RedisServer::start();
    let bus = open(&opts(&server.url())).await.expect("connect");
    let runtime = start(&bus).await;
    let events = runtime.subscribe();
    server.cli(&["CLIENT", "PAUSE", "1500", "ALL"]);
    run_tasks(&bus, 5, 0).await;
    still_up(runtime, events).await;
}

// ---- `genesis serve` at start: configuration errors end it with the reason; HTTP first ----

fn test_config(dir: &std::path::Path, http_port: Option<u16>) -> PathBuf {
    support::write_test_config_with(dir, &support::shipped_roster(), http_port)
}

/// Run `genesis serve` until it exits (it must, by itself); returns (exit ok, all output).
fn serve_until_exit(config: &std::path::Path, redis_url: &str) -> (bool, String) {
    let mut child = Command::new(support::genesis_bin())
        .args(["serve", "--config"])
        .arg(config)
        .args(["--redis-url", redis_url])
        .env_remove("GENESIS_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn genesis serve");
    let status = support::wait_blocking(WAIT, "genesis serve exits by itself", || child.try_wait().ok().flatten());
    let out = child.wait_with_output().expect("output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (status.success(), text)
}

#[test]
fn wrong_password_ends_the_start_with_the_reason() {
    let server = RedisServer::builder().acl_user("genesis", "right-pw").start();
    let dir = tempfile::tempdir().expect("dir");
    let config = test_config(dir.path(), None);
    let url = format!("redis://genesis:hunter2-wrong@127.0.0.1:{}/", server.port());
    let (ok, out) = serve_until_exit(&config, &url);
    assert!(!ok, "exits non-zero: {out}");
    assert!(out.contains("refused"), "says Redis refused it: {out}");
    assert!(!out.contains("hunter2-wrong"), "the password leaked: {out}");
}

#[test]
fn bad_url_ends_the_start_naming_the_flag() {
    let dir = tempfile::tempdir().expect("dir");
    let config = test_config(dir.path(), None);
    let (ok, out) = serve_until_exit(&config, "redis+cluster://u:pw-secret@nohost");
    assert!(!ok, "exits non-zero: {out}");
    assert!(out.contains("--redis-url"), "names the flag: {out}");
    assert!(!out.contains("pw-secret"), "the password leaked: {out}");
}

#[test]
fn http_answers_before_redis_and_readyz_says_why() {
    let dir = tempfile::tempdir().expect("dir");
    let http = support::free_port();
    let redis_port = support::free_port();
    let config = test_config(dir.path(), Some(http));
    let log = std::fs::File::create(dir.path().join("node.log")).expect("log");
    let mut child = Command::new(support::genesis_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/")])
        .env_remove("GENESIS_REDIS_URL")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn genesis serve");
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().expect("client");
    let get = |path: &str| client.get(format!("http://127.0.0.1:{http}{path}")).send().ok();
    support::wait_blocking(WAIT, "/healthz answers while Redis is down", || {
        get("/healthz").filter(|r| r.status().is_success())
    });
    let body = support::wait_blocking(WAIT, "/readyz says it waits for Redis", || {
        let r = get("/readyz")?;
        let status = r.status().as_u16();
        let text = r.text().ok()?;
        (status == 503 && text.contains("waiting for Redis")).then_some(text)
    });
    assert!(body.contains(&redis_port.to_string()), "names where it waits: {body}");
    let _redis = support::RedisServer::builder().port(redis_port).start();
    support::wait_blocking(WAIT, "/readyz turns 200 once Redis is up", || {
        get("/readyz").filter(|r| r.status().is_success())
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn config_check_reads_the_tls_files() {
    let dir = tempfile::tempdir().expect("dir");
    let config = test_config(dir.path(), None);
    let mut text = std::fs::read_to_string(&config).expect("config");
    text =
        text.replacen("[bus]\n", "[bus]\nredis_url = \"rediss://127.0.0.1:1/\"\ntls_ca_file = \"missing-ca.pem\"\n", 1);
    std::fs::write(&config, &text).expect("write");
    let check = |config: &std::path::Path| {
        let out = Command::new(support::genesis_bin())
            .args(["config", "check", "--config"])
            .arg(config)
            .env_remove("GENESIS_REDIS_URL")
            .output()
            .expect("run");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = check(&config);
    assert!(!ok && err.contains("bus.tls_ca_file") && err.contains("cannot read"), "{err}");
    std::fs::write(dir.path().join("missing-ca.pem"), "not a certificate").expect("write");
    let (ok, err) = check(&config);
    assert!(!ok && err.contains("bus.tls_ca_file") && err.contains("no PEM certificate"), "{err}");
    let kit = genesis_testkit::generate_tls(dir.path());
    std::fs::copy(&kit.ca_cert, dir.path().join("missing-ca.pem")).expect("copy");
    let (ok, err) = check(&config);
    assert!(ok, "a real CA file passes: {err}");
}
