//! The service's lifecycle under systemd: graceful shutdown on SIGTERM (drain, grace period, exit 0,
//! nothing lost) and the sd_notify protocol (READY, WATCHDOG, STOPPING in order).
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

fn publish(config: &std::path::Path, redis: &RedisServer, payload: &str) -> String {
    let (ok, out, err) = cli(config, redis, &["publish", "--topic", "genesis.build", "--payload", payload]);
    assert!(ok, "{err}");
    out.trim().to_string()
}

fn status(config: &std::path::Path, redis: &RedisServer, id: &str) -> String {
    cli_task(config, redis, id).and_then(|t| t["status"].as_str().map(String::from)).unwrap_or_default()
}

#[test]
fn sigterm_lets_running_tasks_finish_within_the_grace_period_and_exits_0() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    set_grace(&config, "30s");
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    let ids: Vec<String> = (0..3).map(|_| publish(&config, &redis, r#"{"simulate": {"sleep_ms": 800}}"#)).collect();
    for id in &ids {
        wait_blocking(WAIT, "task running", || (status(&config, &redis, id) == "running").then_some(()));
    }
    let exit = node.terminate();
    assert!(exit.success(), "exit 0 after SIGTERM: {exit:?}\n{}", node.logs());
    for id in &ids {
        assert_eq!(status(&config, &redis, id), "succeeded", "finished during the grace period");
    }
    assert!(node.logs().contains("draining"), "{}", node.logs());
}

#[test]
fn tasks_still_running_when_the_grace_period_ends_are_replayed_not_lost() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    set_grace(&config, "200ms");
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    let id = publish(&config, &redis, r#"{"simulate": {"sleep_ms": 3000}}"#);
    wait_blocking(WAIT, "task running", || (status(&config, &redis, &id) == "running").then_some(()));
    let exit = node.terminate();
    assert!(exit.success(), "{exit:?}");
    assert!(node.logs().contains("grace period over"), "{}", node.logs());
    assert_eq!(status(&config, &redis, &id), "running", "left pending, not acknowledged");
    let mut again = Node::spawn(&config, &redis, "n1", dir.path());
    wait_blocking(WAIT, "the restarted node finishes it", || {
        (status(&config, &redis, &id) == "succeeded").then_some(())
    });
    assert!(again.terminate().success());
}

#[test]
fn notifies_systemd_ready_watchdog_and_stopping_in_order() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config(dir.path(), &shipped_roster());
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let sock = socket_path.to_string_lossy().to_string();
    let mut node = Node::start_with_env(
        &config,
        Some(&redis),
        "n1",
        dir.path(),
        &[("NOTIFY_SOCKET", &sock), ("WATCHDOG_USEC", "200000")],
    );
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut receive = |seen: &mut Vec<String>| {
        let n = socket.recv(&mut buf).expect("a notification before the timeout");
        seen.extend(String::from_utf8_lossy(&buf[..n]).lines().map(String::from));
    };
    while !seen.iter().any(|l| l == "WATCHDOG=1") {
        receive(&mut seen);
    }
    let _ = node.terminate();
    while !seen.iter().any(|l| l == "STOPPING=1") {
        receive(&mut seen);
    }
    let pos = |s: &str| seen.iter().position(|l| l == s).unwrap_or(usize::MAX);
    assert!(pos("READY=1") < pos("WATCHDOG=1"), "{seen:?}");
    assert!(pos("WATCHDOG=1") < pos("STOPPING=1"), "{seen:?}");
}

/// On the in-process bus nothing survives the process: the drain says that unfinished tasks are
/// lost, not that they will be replayed.
#[test]
fn on_the_in_process_bus_the_drain_says_unfinished_tasks_are_lost() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    set_grace(&config, "200ms");
    let mut node = Node::start(&config, None, "solo", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    wait_blocking(WAIT, "the node is ready", || {
        client.get(format!("{base}/readyz")).send().ok().filter(|r| r.status().is_success())
    });
    let key = admin_key(dir.path());
    let created: serde_json::Value = client
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"topic": "genesis.build", "payload": {"simulate": {"sleep_ms": 5000}}}))
        .send()
        .and_then(|r| r.json())
        .expect("task created");
    let id = created["task_id"].as_str().expect("task id").to_string();
    wait_blocking(WAIT, "task running", || {
        let task: serde_json::Value =
            client.get(format!("{base}/v1/tasks/{id}")).bearer_auth(&key).send().ok()?.json().ok()?;
        (task["status"] == "running").then_some(())
    });
    assert!(node.terminate().success(), "{}", node.logs());
    let logs = node.logs();
    assert!(logs.contains("grace period over; unfinished tasks are lost"), "{logs}");
    assert!(!logs.contains("will be replayed"), "{logs}");
}
