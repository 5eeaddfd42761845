//! The HTTP surface of `genesis serve`: probes, the task API on the in-process bus, 4xx on bad input,
//! and readiness following Redis.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

fn get(url: &str) -> Option<(u16, Value)> {
    send(client().get(url))
}

/// GET with an API key.
fn get_as(key: &str, url: &str) -> Option<(u16, Value)> {
    send(client().get(url).bearer_auth(key))
}

fn send(req: reqwest::blocking::RequestBuilder) -> Option<(u16, Value)> {
    let r = req.send().ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().unwrap_or(Value::Null)))
}

#[test]
fn embedded_bus_node_runs_tasks_submitted_over_http() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    let mut node = Node::start(&config, None, "solo", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    wait_blocking(WAIT, "the node is ready", || get(&format!("{base}/readyz")).filter(|(s, _)| *s == 200));
    assert!(node.logs().contains("NOT durable"), "the log says the bus is not durable");
    // The first-run admin key (README, "Using it"; tests/auth.rs has the rest of the key rules).
    let key = admin_key(dir.path());

    let r = client()
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(&key)
        .json(&json!({"topic": "genesis.spec", "payload": {"simulate": {"fail_attempts": 1}}}))
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().expect("json");
    let id = created["task_id"].as_str().expect("task id").to_string();
    // One retry: the shipped 5 s retry_delay is capped by the test config's retry.max_delay (1 s).
    let (_, task) = wait_blocking(WAIT, "the task succeeds", || {
        get_as(&key, &format!("{base}/v1/tasks/{id}")).filter(|(s, t)| *s == 200 && t["status"] == "succeeded")
    });
    assert_eq!(task["attempts"], 2);

    let bad = client()
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(&key)
        .json(&json!({"topic": "nope", "payload": {}}))
        .send()
        .expect("post");
    assert_eq!(bad.status().as_u16(), 400);
    let body: Value = bad.json().expect("json");
    assert!(body["error"].as_str().unwrap_or("").contains("topic nope"), "{body}");
    // One tenant rule for tasks and payments: braces would move the ledger's hash tag.
    let bad_tenant = client()
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(&key)
        .json(&json!({"topic": "genesis.spec", "payload": {}, "tenant": "acme{eu}"}))
        .send()
        .expect("post");
    assert!(bad_tenant.status().is_client_error(), "{}", bad_tenant.status());
    let text = bad_tenant.text().unwrap_or_default();
    assert!(text.contains("tenant id \"acme{eu}\" is not valid") && text.contains("no spaces or braces"), "{text}");
    let malformed = client()
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .expect("post");
    assert!(malformed.status().is_client_error());
    let (status, body) = get_as(&key, &format!("{base}/v1/tasks/not-an-id")).expect("get");
    assert_eq!(status, 400, "{body}");
    assert!(node.terminate().success());
}

#[test]
fn readiness_follows_redis() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    let ready = format!("http://127.0.0.1:{port}/readyz");
    wait_blocking(WAIT, "ready", || get(&ready).filter(|(s, _)| *s == 200));
    assert_eq!(get(&format!("http://127.0.0.1:{port}/healthz")).map(|(s, _)| s), Some(200));
    redis.kill();
    let (_, body) = wait_blocking(WAIT, "unready while Redis is down", || get(&ready).filter(|(s, _)| *s == 503));
    assert!(body["health"]["bus_error"].is_string(), "{body}");
    redis.restart();
    wait_blocking(WAIT, "ready again once Redis is back", || get(&ready).filter(|(s, _)| *s == 200));
    assert!(node.terminate().success());
}

/// The value of one sample line `name{labels} value` in a Prometheus/OpenMetrics exposition.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[test]
fn metrics_count_the_tasks_actually_run() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let roster = dir.path().join("agents.toml");
    std::fs::write(
        &roster,
        "[defaults]\nretry_delay = \"20ms\"\n\n[[agent]]\nname = \"genesis.qa\"\nmax_retries = 1\n",
    )
    .expect("roster");
    let port = free_port();
    let config = write_test_config_with(dir.path(), &roster, Some(port));
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    let publish = |payload: &str| {
        let (ok, out, err) = cli(&config, &redis, &["publish", "--topic", "genesis.qa", "--payload", payload]);
        assert!(ok, "{err}");
        out.trim().to_string()
    };
    let mut ids: Vec<String> = (0..5).map(|_| publish("{}")).collect();
    ids.push(publish(r#"{"simulate": {"fail_attempts": 1}}"#));
    ids.push(publish(r#"{"simulate": {"fail_attempts": 9}}"#));
    for id in &ids {
        wait_blocking(WAIT, "task final", || {
            cli_task(&config, &redis, id).filter(|t| t["status"] == "succeeded" || t["status"] == "dead")
        });
    }
    // /metrics on the API port is for admin keys (docs/OPERATIONS.md, "Metrics address").
    let key = create_key(&config, &redis, "ops", "admin");
    let url = format!("http://127.0.0.1:{port}/metrics");
    let text = client().get(&url).bearer_auth(&key).send().expect("scrape").text().expect("text");
    let qa = r#"agent="genesis.qa""#;
    assert_eq!(sample(&text, "genesis_tasks_succeeded_total", qa), Some(6.0), "{text}");
    assert_eq!(sample(&text, "genesis_tasks_received_total", qa), Some(9.0), "5 + 2 + 2 attempts");
    assert_eq!(sample(&text, "genesis_tasks_failed_total", qa), Some(3.0), "1 + 2 failed attempts");
    assert_eq!(sample(&text, "genesis_tasks_retried_total", qa), Some(2.0));
    assert_eq!(
        sample(&text, "genesis_tasks_dead_total", r#"agent="genesis.qa",reason="retries_exhausted""#),
        Some(1.0)
    );
    assert_eq!(sample(&text, "genesis_task_duration_seconds_count", qa), Some(9.0));
    // Gauges are sampled periodically: the DLQ depth shows the dead task.
    wait_blocking(WAIT, "the DLQ gauge is sampled", || {
        let text = client().get(&url).bearer_auth(&key).send().ok()?.text().ok()?;
        (sample(&text, "genesis_dlq_depth", r#"topic="genesis.qa""#) == Some(1.0)).then_some(())
    });
    assert!(node.terminate().success());
}

#[test]
fn a_taken_http_address_stops_the_start_and_names_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    let out = std::process::Command::new(genesis_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("GENESIS_REDIS_URL")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http.addr") && err.contains("cannot listen"), "{err}");
}

/// The CLI parses `--tenant` with the same rule before doing anything else (exit 2, the rule named).
#[test]
fn cli_tenant_flags_follow_the_tenant_rule() {
    for args in [
        &["publish", "--topic", "genesis.spec", "--payload", "{}", "--tenant", "a b"][..],
        &[
            "payments",
            "intent",
            "--agent",
            "x",
            "--vendor",
            "openai.com",
            "--amount-cents",
            "1",
            "--mandate",
            "m",
            "--tenant",
            "{t}",
        ],
        &["budget", "show", "--tenant", "t}"],
    ] {
        let out = std::process::Command::new(genesis_bin()).args(args).output().expect("run genesis");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("is not valid: a tenant id is 1 to 128 characters"), "{args:?}: {err}");
    }
}

/// `--http-addr` (or `GENESIS_HTTP_ADDR`) overrides `http.addr`, so instances on one host can share
/// one config file; a taken address named that way is reported under the flag's name.
#[test]
fn http_addr_flag_and_env_override_the_config() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_port = taken.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("dir");
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(taken_port));

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut node = Node::start_with_env(&config, None, "solo", dir.path(), &[("GENESIS_HTTP_ADDR", &addr)]);
    let ready = format!("http://{addr}/readyz");
    wait_blocking(WAIT, "the node serves on GENESIS_HTTP_ADDR", || get(&ready).filter(|(s, _)| *s == 200));
    assert!(node.terminate().success(), "{}", node.logs());
    assert!(!node.logs().contains('\u{1b}'), "no colour codes when stderr is a file: {}", node.logs());

    let out = std::process::Command::new(genesis_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--http-addr", &format!("127.0.0.1:{taken_port}")])
        .env_remove("GENESIS_REDIS_URL")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("--http-addr = \"127.0.0.1:{taken_port}\": cannot listen")), "{err}");

    let out = std::process::Command::new(genesis_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--http-addr", "localhost"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--http-addr = \"localhost\": must be an IP address"), "{err}");
}

/// docs/semantics.md, "Cancellation", through both front ends: `genesis task cancel` and
/// `POST /v1/tasks/{id}/cancel` on a node on Redis. A queued task dies without running once a worker
/// takes it; a running one is stopped by its node; a finished one is refused (exit 1, HTTP 409).
#[test]
fn tasks_are_cancelled_from_the_cli_and_over_http() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let roster = dir.path().join("agents.toml");
    let agent =
        "[[agent]]\nname = \"genesis.qa\"\nconcurrency = 1\ntimeout = \"600s\"\nrate = \"600/min\"\nburst = 5\n";
    std::fs::write(&roster, agent).expect("roster");
    let port = free_port();
    let config = write_test_config_with(dir.path(), &roster, Some(port));
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    wait_blocking(WAIT, "ready", || get(&format!("{base}/readyz")).filter(|(s, _)| *s == 200));
    let key = create_key(&config, &redis, "default", "tenant");
    let sleeper = r#"{"simulate": {"sleep_ms": 600000}}"#;
    let publish = || {
        let (ok, out, err) = cli(&config, &redis, &["publish", "--topic", "genesis.qa", "--payload", sleeper]);
        assert!(ok, "{err}");
        out.trim().to_string()
    };
    let status = |id: &str, want: &str| {
        wait_blocking(WAIT, &format!("task {id} is {want}"), || {
            cli_task(&config, &redis, id).filter(|t| t["status"] == want)
        })
    };
    let running = publish();
    status(&running, "running");
    // The only worker is busy: the second task stays queued in the stream.
    let queued = publish();
    assert_eq!(cli_task(&config, &redis, &queued).map(|t| t["status"].clone()), Some(json!("queued")));

    let (ok, out, err) = cli(&config, &redis, &["task", "cancel", &queued]);
    assert!(ok, "{err}");
    assert!(out.contains("is queued") && out.contains("without running"), "{out}");
    let (ok, out, _) = cli(&config, &redis, &["task", "get", &queued]);
    assert!(ok && out.contains("cancel:      requested at"), "{out}");

    let r = client().post(format!("{base}/v1/tasks/{running}/cancel")).bearer_auth(&key).send().expect("post");
    assert_eq!(r.status().as_u16(), 202);
    let body: Value = r.json().expect("json");
    assert_eq!(body["cancel"], "requested", "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("running on node n1"), "{body}");
    assert!(body["task"]["cancel_requested_at"].is_u64(), "{body}");

    for id in [&running, &queued] {
        let t = status(id, "dead");
        assert_eq!(t["reason"], "cancelled", "{t}");
    }
    let t = cli_task(&config, &redis, &queued).expect("record");
    assert!(t["error"].as_str().unwrap_or("").contains("before it ran"), "{t}");

    // Final: refused, clearly.
    let (ok, out, err) = cli(&config, &redis, &["task", "cancel", &running, "--json"]);
    assert!(!ok && err.contains("already dead; nothing to cancel"), "{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["task"]["status"], "dead");
    let r = client().post(format!("{base}/v1/tasks/{queued}/cancel")).bearer_auth(&key).send().expect("post");
    assert_eq!(r.status().as_u16(), 409);
    let body: Value = r.json().expect("json");
    assert!(body["error"].as_str().unwrap_or("").contains("already dead"), "{body}");
    // Unknown and malformed ids.
    let unknown = "01J00000000000000000000000";
    let r = client().post(format!("{base}/v1/tasks/{unknown}/cancel")).bearer_auth(&key).send().expect("post");
    assert_eq!(r.status().as_u16(), 404);
    let (ok, _, err) = cli(&config, &redis, &["task", "cancel", unknown]);
    assert!(!ok && err.contains("not found"), "{err}");
    let r = client().post(format!("{base}/v1/tasks/nope/cancel")).bearer_auth(&key).send().expect("post");
    assert_eq!(r.status().as_u16(), 400);

    // `genesis health` shows each agent's rate limit and its circuit on each node.
    let health = wait_blocking(WAIT, "the heartbeat carries the circuits", || {
        let (ok, out, _) = cli(&config, &redis, &["health", "--json"]);
        let v: Value = serde_json::from_str(out.trim()).ok().filter(|_| ok)?;
        v["agents"][0]["circuits"].get("n1").is_some().then_some(v)
    });
    let qa = &health["agents"][0];
    assert_eq!(
        (qa["agent"].as_str(), qa["rate"].as_str()),
        (Some("genesis.qa"), Some("600/min (burst 5)")),
        "{health}"
    );
    assert_eq!(qa["circuits"]["n1"], "closed", "{health}");
    let (ok, out, err) = cli(&config, &redis, &["health"]);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("genesis.qa") && l.contains("600/min (burst 5)") && l.ends_with("closed")),
        "{out}"
    );
    assert!(node.terminate().success());
}
