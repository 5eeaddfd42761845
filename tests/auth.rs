//! API keys and tenant isolation on real `genesis serve` processes, on the embedded bus and on a real
//! Redis (docs/semantics.md, "Tenants"; docs/OPERATIONS.md, "API keys"): no key → 401, another tenant's
//! task or workflow → 404 (get, cancel, retry, listing), a revoked key → 401, an admin key sees all, a
//! Host not allowed → 400, `http.auth = "off"` refused off loopback, and the README's first run.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// Send, and return the status and the JSON body.
fn call(req: RequestBuilder) -> (u16, Value) {
    let r = req.send().expect("request");
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn ready(base: &str) {
    wait_blocking(WAIT, "the node is ready", || {
        client().get(format!("{base}/readyz")).send().ok().filter(|r| r.status().is_success())
    });
}

struct Keys {
    admin: String,
    /// Tenant `acme`.
    a: String,
    /// Tenant `globex`.
    b: String,
}

/// What every bus must do. `metrics_here`: /metrics is on the API port (for admin keys).
fn isolation(base: &str, k: &Keys, metrics_here: bool) {
    let c = client();
    let sleeper = json!({"topic": "genesis.qa", "payload": {"simulate": {"sleep_ms": 600000}}});
    // No key, a malformed one, a well-formed unknown one: 401 JSON with the challenge.
    let r = c.post(format!("{base}/v1/tasks")).json(&sleeper).send().expect("post");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let body: Value = r.json().expect("json");
    assert!(body["error"].as_str().unwrap_or("").contains("Authorization: Bearer"), "{body}");
    let unknown = format!("gk_0123456789ab_{}", "0".repeat(64));
    for bad in ["nope", unknown.as_str()] {
        let (s, body) = call(c.get(format!("{base}/v1/workflows")).bearer_auth(bad));
        assert_eq!(s, 401, "{bad}: {body}");
        assert!(body["error"].as_str().unwrap_or("").contains("not valid"), "{body}");
    }

    // The tenant comes from the key; a tenant key may not name one in the body.
    let (s, body) = call(c.post(format!("{base}/v1/tasks")).bearer_auth(&k.a).json(&sleeper));
    assert_eq!(s, 201, "{body}");
    let task = body["task_id"].as_str().expect("task id").to_string();
    let mut named = sleeper.clone();
    named["tenant"] = json!("globex");
    let (s, body) = call(c.post(format!("{base}/v1/tasks")).bearer_auth(&k.a).json(&named));
    assert_eq!(s, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("the tenant comes from the API key"), "{body}");
    let (s, mine) = call(c.get(format!("{base}/v1/tasks/{task}")).bearer_auth(&k.a));
    assert_eq!((s, mine["tenant_id"].as_str()), (200, Some("acme")), "{mine}");

    // Tenant B cannot read or cancel it: 404, as for an unknown task; and nothing was cancelled.
    let (s, body) = call(c.get(format!("{base}/v1/tasks/{task}")).bearer_auth(&k.b));
    assert_eq!(s, 404, "{body}");
    let (s, _) = call(c.post(format!("{base}/v1/tasks/{task}/cancel")).bearer_auth(&k.b));
    assert_eq!(s, 404);
    let (_, after) = call(c.get(format!("{base}/v1/tasks/{task}")).bearer_auth(&k.a));
    assert!(after["cancel_requested_at"].is_null(), "B's cancel changed nothing: {after}");
    // The admin sees it, and an admin may act for a tenant by naming it.
    let (s, seen) = call(c.get(format!("{base}/v1/tasks/{task}")).bearer_auth(&k.admin));
    assert_eq!((s, seen["task_id"].as_str()), (200, Some(task.as_str())));
    let (s, body) = call(c.post(format!("{base}/v1/tasks")).bearer_auth(&k.admin).json(&named));
    assert_eq!(s, 201, "{body}");
    let for_b = body["task_id"].as_str().expect("task id").to_string();
    let (s, theirs) = call(c.get(format!("{base}/v1/tasks/{for_b}")).bearer_auth(&k.b));
    assert_eq!((s, theirs["tenant_id"].as_str()), (200, Some("globex")), "{theirs}");
    // A's own cancel works.
    let (s, body) = call(c.post(format!("{base}/v1/tasks/{task}/cancel")).bearer_auth(&k.a));
    assert_eq!(s, 202, "{body}");

    // Workflows: A's is A's; B gets 404 for get, cancel and retry, and never lists it.
    let start = json!({"template": "landing-page", "input": {"product": "socks"}});
    let (s, body) = call(c.post(format!("{base}/v1/workflows")).bearer_auth(&k.a).json(&start));
    assert_eq!(s, 201, "{body}");
    let wf = body["workflow"]["id"].as_str().expect("id").to_string();
    assert_eq!(body["workflow"]["tenant_id"], "acme");
    let mut named = start.clone();
    named["tenant_id"] = json!("globex");
    let (s, _) = call(c.post(format!("{base}/v1/workflows")).bearer_auth(&k.a).json(&named));
    assert_eq!(s, 400, "a tenant key may not name the workflow's tenant");
    for (method, path) in [("GET", ""), ("POST", "/cancel"), ("POST", "/retry")] {
        let url = format!("{base}/v1/workflows/{wf}{path}");
        let req = if method == "GET" { c.get(&url) } else { c.post(&url) };
        let (s, body) = call(req.bearer_auth(&k.b));
        assert_eq!(s, 404, "{method} {path}: {body}");
    }
    let ids = |key: &str, query: &str| -> Vec<String> {
        let (s, list) = call(c.get(format!("{base}/v1/workflows{query}")).bearer_auth(key));
        assert_eq!(s, 200, "{list}");
        list["workflows"].as_array().expect("list").iter().map(|w| w["id"].as_str().expect("id").to_string()).collect()
    };
    assert!(ids(&k.a, "").contains(&wf));
    assert!(!ids(&k.b, "").contains(&wf), "B's listing never shows A's workflow");
    assert!(ids(&k.b, "?tenant=acme").is_empty(), "nor when B asks for A's tenant");
    assert!(ids(&k.admin, "").contains(&wf) && ids(&k.admin, "?tenant=acme").contains(&wf));
    assert!(!ids(&k.admin, "?tenant=globex").contains(&wf));
    // B choosing A's workflow id gets a conflict, not A's workflow.
    let (s, body) = call(
        c.post(format!("{base}/v1/workflows"))
            .bearer_auth(&k.b)
            .json(&json!({"template": "landing-page", "workflow_id": wf})),
    );
    assert_eq!(s, 409, "{body}");
    assert!(body.get("workflow").is_none(), "{body}");
    let (s, own) = call(c.get(format!("{base}/v1/workflows/{wf}")).bearer_auth(&k.a));
    assert_eq!((s, own["tenant_id"].as_str()), (200, Some("acme")));

    // Stats add up every tenant: admin only.
    assert_eq!(call(c.get(format!("{base}/v1/stats")).bearer_auth(&k.a)).0, 403);
    assert_eq!(call(c.get(format!("{base}/v1/stats")).bearer_auth(&k.admin)).0, 200);
    let metrics = |key: Option<&str>| {
        let req = c.get(format!("{base}/metrics"));
        let req = match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        req.send().expect("metrics").status().as_u16()
    };
    if metrics_here {
        assert_eq!((metrics(None), metrics(Some(&k.a)), metrics(Some(&k.admin))), (401, 403, 200));
    } else {
        assert_eq!(metrics(Some(&k.admin)), 404, "/metrics is on its own address only");
    }

    // The Host check comes first, even with a good key; the probes are not checked.
    let (s, body) = call(c.get(format!("{base}/v1/workflows")).bearer_auth(&k.admin).header("host", "evil.example"));
    assert_eq!(s, 400, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("http.allowed_hosts"), "{body}");
    let (s, _) = call(c.get(format!("{base}/v1/workflows")).bearer_auth(&k.admin).header("host", "localhost:1"));
    assert_eq!(s, 200, "localhost with any port is allowed by default");
    assert_eq!(call(c.get(format!("{base}/healthz")).header("host", "evil.example")).0, 200);

    // The payments route keeps its own auth (the task's payment token), not an API key.
    let (s, body) =
        call(c.post(format!("{base}/v1/payments/intents")).bearer_auth(&k.admin).json(&json!({"vendor": "x.com"})));
    assert_ne!(s, 200, "{body}");
    assert!(!body["error"].as_str().unwrap_or("").contains("API key"), "{body}");
}

#[test]
fn keys_and_tenants_on_the_embedded_bus() {
    let dir = tempfile::tempdir().expect("dir");
    copy_templates(dir.path());
    let port = free_port();
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    set_grace(&config, "200ms");
    let keys = Keys {
        admin: configure_key(&config, "ops", "admin"),
        a: configure_key(&config, "acme", "tenant"),
        b: configure_key(&config, "globex", "tenant"),
    };
    let (ok, out, err) = {
        let o = std::process::Command::new(genesis_bin())
            .arg("--config")
            .arg(&config)
            .args(["apikey", "list"])
            .env_remove("GENESIS_REDIS_URL")
            .output()
            .expect("run");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("http.api_keys[")).count(), 3, "{out}");
    let mut node = Node::start(&config, None, "solo", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    ready(&base);
    isolation(&base, &keys, true);
    assert!(!dir.path().join("admin.key").exists(), "no first-run key when keys are listed");
    let logs = node.logs();
    for k in [&keys.admin, &keys.a, &keys.b] {
        assert!(!logs.contains(&k[16..]), "a key's secret is never logged");
    }
    assert!(node.terminate().success(), "{}", node.logs());
}

#[test]
fn keys_and_tenants_on_redis_and_revocation() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    copy_templates(dir.path());
    let (port, metrics_port) = (free_port(), free_port());
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    set_http(&config, &format!("metrics_addr = \"127.0.0.1:{metrics_port}\""));
    set_grace(&config, "200ms");
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());
    wait_blocking(WAIT, "the node says that no key exists", || {
        node.logs().contains("no API key exists yet").then_some(())
    });
    let keys = Keys {
        admin: create_key(&config, &redis, "ops", "admin"),
        a: create_key(&config, &redis, "acme", "tenant"),
        b: create_key(&config, &redis, "globex", "tenant"),
    };
    let base = format!("http://127.0.0.1:{port}");
    ready(&base);
    isolation(&base, &keys, false);
    // /metrics is open on its own address.
    let r = client().get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().expect("scrape");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().expect("text").contains("genesis_"), "metrics served");

    // `apikey list` shows id, tenant, role, times; never a secret.
    let (ok, list, err) = cli(&config, &redis, &["apikey", "list", "--json"]);
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(list.trim()).expect("json");
    let a_id = keys.a[3..15].to_string();
    let a_row = listed.as_array().expect("rows").iter().find(|r| r["id"] == a_id.as_str()).expect("A listed").clone();
    assert_eq!((a_row["tenant"].as_str(), a_row["role"].as_str()), (Some("acme"), Some("tenant")), "{a_row}");
    assert!(a_row["revoked_at"].is_null());
    for k in [&keys.admin, &keys.a, &keys.b] {
        assert!(!list.contains(&k[16..]), "no secret in the listing: {list}");
    }
    // Revoked: refused from the next request on.
    let (ok, out, err) = cli(&config, &redis, &["apikey", "revoke", &a_id]);
    assert!(ok && out.contains("revoked key"), "{out}{err}");
    let (s, body) = call(client().get(format!("{base}/v1/workflows")).bearer_auth(&keys.a));
    assert_eq!(s, 401, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("revoked"), "{body}");
    assert_eq!(call(client().get(format!("{base}/v1/workflows")).bearer_auth(&keys.b)).0, 200, "others still work");
    let (ok, out, _) = cli(&config, &redis, &["apikey", "revoke", &a_id]);
    assert!(ok && out.contains("already revoked"), "{out}");
    let (ok, _, err) = cli(&config, &redis, &["apikey", "revoke", "ffffffffffff"]);
    assert!(!ok && err.contains("no key ffffffffffff"), "{err}");
    let (ok, text, _) = cli(&config, &redis, &["apikey", "list"]);
    assert!(ok);
    let row = text.lines().find(|l| l.starts_with(&a_id)).expect("row");
    assert!(row.contains("acme") && !row.contains(" - "), "revoked time shown: {row}");
    assert!(node.terminate().success(), "{}", node.logs());
}

/// README, "Using it": `genesis serve` with the shipped configuration (copied, so the key lands in a
/// temporary directory; only the port is moved) on the embedded bus, with no key made by hand. The node
/// writes an admin key to `admin.key` beside its genesis.toml (mode 0600), names the file in its log
/// (never the key), accepts it, and keeps it for the next start.
#[test]
fn the_readme_first_run_flow_works() {
    let dir = tempfile::tempdir().expect("dir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for f in ["genesis.toml", "agents.toml"] {
        std::fs::copy(shipped.join(f), dir.path().join(f)).expect("copy");
    }
    copy_templates(dir.path());
    let config = dir.path().join("genesis.toml");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let start = || Node::start_with_env(&config, None, "solo", dir.path(), &[("GENESIS_HTTP_ADDR", &addr)]);
    let mut node = start();
    let base = format!("http://127.0.0.1:{port}");
    ready(&base);
    let key = admin_key(dir.path());
    let path = dir.path().join("admin.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    let logs = node.logs();
    assert!(logs.contains(&path.display().to_string()) && logs.contains("Authorization: Bearer $(cat"), "{logs}");
    assert!(!logs.contains(&key), "the key is never logged");
    let task = json!({"topic": "genesis.build", "payload": {"spec": "landing page"}, "reply_to": "genesis.deploy"});
    assert_eq!(call(client().post(format!("{base}/v1/tasks")).json(&task)).0, 401);
    let (s, body) = call(client().post(format!("{base}/v1/tasks")).bearer_auth(&key).json(&task));
    assert_eq!(s, 201, "{body}");
    let id = body["task_id"].as_str().expect("id").to_string();
    wait_blocking(WAIT, "the task succeeds", || {
        let (s, t) = call(client().get(format!("{base}/v1/tasks/{id}")).bearer_auth(&key));
        (s == 200 && t["status"] == "succeeded").then_some(())
    });
    assert!(node.terminate().success(), "{}", node.logs());
    // The next start accepts the same key.
    let mut node = start();
    ready(&base);
    assert_eq!(admin_key(dir.path()), key);
    assert_eq!(call(client().get(format!("{base}/v1/stats")).bearer_auth(&key)).0, 200);
    assert!(node.terminate().success(), "{}", node.logs());
}

/// `http.auth = "off"`: no key asked for on a loopback address; anywhere else the node does not start
/// (from the file, or with `--http-addr`), and `config check` names the key.
#[test]
fn auth_off_is_for_loopback_only() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    set_http(&config, "auth = \"off\"");
    let mut node = Node::start(&config, None, "solo", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    ready(&base);
    let (s, body) =
        call(client().post(format!("{base}/v1/tasks")).json(&json!({"topic": "genesis.qa", "payload": {}})));
    assert_eq!(s, 201, "{body}");
    assert!(!dir.path().join("admin.key").exists());
    assert!(node.terminate().success());

    let serve = |args: &[&str]| {
        let out = std::process::Command::new(genesis_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .args(args)
            .env_remove("GENESIS_REDIS_URL")
            .env_remove("GENESIS_HTTP_ADDR")
            .output()
            .expect("run");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let open = format!("0.0.0.0:{}", free_port());
    let (ok, err) = serve(&["--http-addr", &open]);
    assert!(!ok, "refused");
    assert!(err.contains("http.auth = \"off\"") && err.contains(&format!("--http-addr is {open}")), "{err}");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace(&format!("127.0.0.1:{port}"), &open)).expect("config");
    let (ok, err) = serve(&[]);
    assert!(!ok && err.contains("http.auth = \"off\": is allowed only on a loopback address"), "{err}");
    let out = std::process::Command::new(genesis_bin())
        .arg("--config")
        .arg(&config)
        .args(["config", "check"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("http.auth"), "{err}");
}
