//! The service as a user runs it: `genesis serve` processes on a real Redis, driven through the CLI,
//! killed with SIGKILL and restarted.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

fn wait_status(config: &std::path::Path, redis: &RedisServer, id: &str, want: &[&str]) -> serde_json::Value {
    wait_blocking(WAIT, &format!("task {id} reaches {want:?}"), || {
        cli_task(config, redis, id).filter(|t| want.iter().any(|w| t["status"] == *w))
    })
}

fn publish(config: &std::path::Path, redis: &RedisServer, topic: &str, payload: &str) -> String {
    let (ok, out, err) = cli(config, redis, &["publish", "--topic", topic, "--payload", payload]);
    assert!(ok, "publish failed: {err}");
    out.trim().to_string()
}

fn roster_names() -> Vec<String> {
    let text = std::fs::read_to_string(shipped_roster()).expect("roster");
    let doc: toml::Table = toml::from_str(&text).expect("roster parses");
    doc["agent"].as_array().expect("agents").iter().filter_map(|a| a["name"].as_str().map(str::to_string)).collect()
}

#[test]
fn a_task_on_each_of_the_23_topics_completes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    let names = roster_names();
    assert_eq!(names.len(), 23);
    // The meta orchestrator's task is a workflow start request (a one-step plan); the others are no-ops.
    const ORCHESTRATE: &str = "genesis.meta.orchestrate";
    let plan = r#"{"plan": {"steps": [{"id": "check", "agent": "genesis.qa"}]}}"#;
    let payload = |n: &str| if n == ORCHESTRATE { plan } else { "{}" };
    let ids: Vec<(String, String)> =
        names.iter().map(|n| (n.clone(), publish(&config, &redis, n, payload(n)))).collect();
    for (name, id) in &ids {
        let t = wait_status(&config, &redis, id, &["succeeded", "dead"]);
        assert_eq!(t["status"], "succeeded", "{name}: {t}");
        if name == ORCHESTRATE {
            assert_eq!(t["result"]["workflow_id"], format!("wf-{id}"), "{t}");
        } else {
            assert_eq!(t["result"]["agent"], name.as_str());
        }
        assert_eq!(t["attempts"], 1);
    }
    let (ok, out, err) = cli(&config, &redis, &["health", "--json"]);
    assert!(ok, "{err}");
    let health: serde_json::Value = serde_json::from_str(out.trim()).expect("health json");
    let n1 = &health["nodes"][0];
    assert_eq!(n1["node_id"], "n1", "{health}");
    assert!(n1["last_heartbeat_ms_ago"].as_u64().is_some_and(|ms| ms < 1000), "heartbeat fresh: {n1}");
    assert_eq!(n1["workers"]["genesis.build"], 4, "{n1}");
    let topics = health["topics"].as_array().expect("topics");
    assert_eq!(topics.len(), 23);
    assert!(topics.iter().all(|t| t["pending"] == 0 && t["lag"] == 0 && t["dlq"] == 0), "{health}");
    let status = node.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}\n{}", node.logs());
}

#[test]
fn sigkill_mid_task_then_the_same_node_id_finishes_it() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    let id = publish(&config, &redis, "genesis.build", r#"{"simulate": {"sleep_ms": 1500}}"#);
    wait_status(&config, &redis, &id, &["running"]);
    node.kill();
    let mut again = Node::spawn(&config, &redis, "n1", dir.path());
    let t = wait_status(&config, &redis, &id, &["succeeded", "dead"]);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert!(again.logs().contains("replaying this consumer's pending entries"), "{}", again.logs());
    let (_, stats, _) = cli(&config, &redis, &["bus", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).expect("stats json");
    let build =
        stats.as_array().and_then(|a| a.iter().find(|s| s["topic"] == "genesis.build").cloned()).expect("build");
    assert_eq!(build["pending"], 0, "{build}");
    assert!(again.terminate().success());
}

#[test]
fn sigkill_then_another_node_takes_over_after_the_heartbeat_expires() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let mut first = Node::spawn(&config, &redis, "n1", dir.path());
    let id = publish(&config, &redis, "genesis.deploy", r#"{"simulate": {"sleep_ms": 1500}}"#);
    wait_status(&config, &redis, &id, &["running"]);
    let mut second = Node::spawn(&config, &redis, "n2", dir.path());
    first.kill();
    let t = wait_status(&config, &redis, &id, &["succeeded", "dead"]);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert!(second.logs().contains("took over entries of a dead node"), "{}", second.logs());
    assert!(second.terminate().success());
}

#[test]
fn failed_task_lands_in_the_dlq_with_history_and_dlq_replay_brings_it_back() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let roster = dir.path().join("agents.toml");
    std::fs::write(
        &roster,
        "[defaults]\nretry_delay = \"20ms\"\n\n[[agent]]\nname = \"genesis.qa\"\nmax_retries = 1\nconcurrency = 2\n",
    )
    .expect("roster");
    let config = write_test_config(dir.path(), &roster);
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());

    let ok = publish(&config, &redis, "genesis.qa", r#"{"simulate": {"fail_attempts": 1}}"#);
    let t = wait_status(&config, &redis, &ok, &["succeeded", "dead"]);
    assert_eq!((t["status"].as_str(), t["attempts"].as_u64()), (Some("succeeded"), Some(2)), "{t}");

    let bad = publish(&config, &redis, "genesis.qa", r#"{"simulate": {"fail_attempts": 5}}"#);
    let t = wait_status(&config, &redis, &bad, &["succeeded", "dead"]);
    assert_eq!(t["status"], "dead", "{t}");
    assert_eq!(t["attempts"], 2, "max_retries + 1 attempts");
    assert!(t["error"].as_str().unwrap_or("").contains("simulated failure on attempt 2"), "{t}");

    let (_, list, _) = cli(&config, &redis, &["dlq", "list", "--topic", "genesis.qa", "--json"]);
    let list: serde_json::Value = serde_json::from_str(list.trim()).expect("dlq json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["task_id"], bad.as_str());
    assert_eq!(list[0]["reason"], "retries_exhausted");
    assert_eq!(list[0]["history"].as_array().map(Vec::len), Some(2), "{list}");
    let first_dlq_id = list[0]["id"].as_str().expect("id").to_string();

    let (ok_replay, out, err) = cli(&config, &redis, &["dlq", "replay", "--topic", "genesis.qa", "--all", "--json"]);
    assert!(ok_replay, "{err}");
    let out: serde_json::Value = serde_json::from_str(out.trim()).expect("replay json");
    assert_eq!(out["replayed"][0]["task_id"], bad.as_str());
    // It runs again from attempt 1 (and, still failing, is dead-lettered again under a new DLQ id).
    let again = wait_blocking(WAIT, "the replayed task is dead-lettered again", || {
        let (_, list, _) = cli(&config, &redis, &["dlq", "list", "--topic", "genesis.qa", "--json"]);
        let list: serde_json::Value = serde_json::from_str(list.trim()).ok()?;
        list.as_array().and_then(|a| a.first().cloned()).filter(|d| d["id"] != first_dlq_id.as_str())
    });
    assert_eq!(again["task_id"], bad.as_str());

    let (_, stats, _) = cli(&config, &redis, &["bus", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).expect("stats json");
    assert_eq!(stats[0]["dlq"], 1, "{stats}");
    let list_reason = |reason: &str| {
        let (_, out, _) = cli(&config, &redis, &["dlq", "list", "--topic", "genesis.qa", "--reason", reason, "--json"]);
        serde_json::from_str::<serde_json::Value>(out.trim()).expect("dlq json").as_array().map_or(0, Vec::len)
    };
    assert_eq!((list_reason("retries_exhausted"), list_reason("poison")), (1, 0));

    // Without a terminal, purge wants --yes and deletes nothing.
    let (ok, _, err) = cli(&config, &redis, &["dlq", "purge", "--topic", "genesis.qa"]);
    assert!(!ok && err.contains("not a terminal") && err.contains("--yes"), "{err}");
    let (ok, out, _) =
        cli(&config, &redis, &["dlq", "purge", "--topic", "genesis.qa", "--reason", "poison", "--yes", "--json"]);
    assert!(ok && out.contains("\"purged\":0"), "{out}");

    // Replay and delete by the task id: what an operator has from logs and `task get`.
    let (ok, out, err) = cli(&config, &redis, &["dlq", "replay", "--topic", "genesis.qa", "--id", &bad, "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains(bad.as_str()), "{out}");
    let third = wait_blocking(WAIT, "dead-lettered a third time", || {
        let (_, list, _) = cli(&config, &redis, &["dlq", "list", "--topic", "genesis.qa", "--json"]);
        let list: serde_json::Value = serde_json::from_str(list.trim()).ok()?;
        list.as_array().and_then(|a| a.first().cloned()).filter(|d| d["id"] != again["id"])
    });
    let t = wait_status(&config, &redis, &bad, &["dead"]);
    assert_eq!(t["dlq_id"], third["id"], "{t}");
    let (ok, out, err) = cli(&config, &redis, &["dlq", "delete", "--topic", "genesis.qa", "--id", &bad, "--json"]);
    assert!(ok, "{err}");
    assert!(out.contains(third["id"].as_str().unwrap_or("?")), "{out}");
    let (ok, _, err) = cli(&config, &redis, &["dlq", "delete", "--topic", "genesis.qa", "--id", &bad]);
    assert!(!ok && err.contains(&format!("no dead letter of task {bad} in the DLQ of genesis.qa")), "{err}");

    let worse = publish(&config, &redis, "genesis.qa", r#"{"simulate": {"fail_attempts": 5}}"#);
    assert_eq!(wait_status(&config, &redis, &worse, &["succeeded", "dead"])["status"], "dead");
    let (ok_purge, out, _) = cli(&config, &redis, &["dlq", "purge", "--topic", "genesis.qa", "--yes", "--json"]);
    assert!(ok_purge);
    assert!(out.contains("\"purged\":1"), "{out}");
    assert!(node.terminate().success());
}

#[test]
fn cli_rejects_bad_input_with_the_exact_problem() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let (ok, _, err) = cli(&config, &redis, &["publish", "--topic", "genesis.nope", "--payload", "{}"]);
    assert!(!ok && err.contains("topic genesis.nope") && err.contains("known topics"), "{err}");
    let (ok, _, err) = cli(&config, &redis, &["publish", "--topic", "genesis.qa", "--payload", "{oops"]);
    assert!(!ok && err.contains("--payload is not valid JSON"), "{err}");
    let (ok, _, err) = cli(&config, &redis, &["task", "get", "not-a-ulid"]);
    assert!(!ok && err.contains("not a task id"), "{err}");

    let roster = dir.path().join("bad-agents.toml");
    std::fs::write(&roster, "[[agent]]\nname = \"genesis.qa\"\nconcurrency = 0\n").expect("roster");
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).expect("dir");
    let bad_config = write_test_config(&bad, &roster);
    let (ok, _, err) = cli(&bad_config, &redis, &["config", "check"]);
    assert!(!ok, "config check fails");
    assert!(err.contains("agent[0].concurrency = 0"), "{err}");
}

#[test]
fn a_node_started_while_redis_is_loading_waits_for_it() {
    let loading = LoadingRedis::start();
    let port = loading.port;
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let log = dir.path().join("n1.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut child = std::process::Command::new(genesis_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--redis-url", &loading.url(), "--node-id", "n1"])
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .spawn()
        .expect("spawn");
    wait_blocking(WAIT, "the node reports Redis not ready", || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("not ready at start-up") || l.contains("cannot reach Redis"))
    });
    assert!(
        child.try_wait().expect("status").is_none(),
        "still running: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop(loading);
    let redis = RedisServer::builder().port(port).start();
    let mut conn = redis.conn();
    wait_blocking(WAIT, "the node comes up once Redis is ready", || {
        redis::cmd("EXISTS").arg("genesis:node:n1").query::<bool>(&mut conn).ok().filter(|e| *e)
    });
    let id = publish(&config, &redis, "genesis.qa", "{}");
    assert_eq!(wait_status(&config, &redis, &id, &["succeeded", "dead"])["status"], "succeeded");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = wait_blocking(WAIT, "exit", || child.try_wait().ok().flatten());
    assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
}

/// `genesis … | head` closes stdout before the command is done writing. Every command then ends
/// quietly with its own status: no panic, no exit 101.
#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let commands: &[&[&str]] = &[
        &["--help"],
        &["health", "--help"],
        &["config", "check"],
        &["config", "check", "--json"],
        &["health"],
        &["health", "--json"],
        &["bus", "stats"],
        &["dlq", "list", "--topic", "genesis.qa"],
        &["publish", "--topic", "genesis.qa", "--payload", "{}"],
        &["budget", "show"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader); // the reader is gone: every write to the pipe fails with EPIPE
        let out = std::process::Command::new(genesis_bin())
            .arg("--config")
            .arg(&config)
            .args(*args)
            .env("GENESIS_REDIS_URL", redis.url())
            .stdout(writer)
            .output()
            .expect("run genesis");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}\n{stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Without `--config` or `GENESIS_CONFIG` the CLI finds ./config/genesis.toml (a checkout), else
/// /etc/genesis/genesis.toml (an installed host); with none of them it names all four places.
#[test]
fn the_config_is_found_without_config_flag() {
    let run = |cwd: &std::path::Path| {
        let out = std::process::Command::new(genesis_bin())
            .args(["config", "check"])
            .current_dir(cwd)
            .env_remove("GENESIS_CONFIG")
            .output()
            .expect("run genesis");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let checkout = tempfile::tempdir().expect("dir");
    let config_dir = checkout.path().join("config");
    std::fs::create_dir(&config_dir).expect("mkdir");
    write_test_config(&config_dir, &shipped_roster());
    let (ok, out, err) = run(checkout.path());
    assert!(ok && out.contains("config/genesis.toml is valid"), "{out}{err}");

    if std::path::Path::new("/etc/genesis/genesis.toml").exists() {
        return; // this host is an installed one: the last place is taken
    }
    let empty = tempfile::tempdir().expect("dir");
    let (ok, _, err) = run(empty.path());
    assert!(!ok, "no config anywhere must fail");
    for place in ["--config", "GENESIS_CONFIG", "./config/genesis.toml", "/etc/genesis/genesis.toml"] {
        assert!(err.contains(place), "names {place}: {err}");
    }
}
