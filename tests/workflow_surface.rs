//! Workflows from the outside, on real `genesis serve` processes: `/v1/workflows` on the in-process
//! bus, the `genesis workflow` commands and a task published to `genesis.meta.orchestrate` on a real
//! Redis, with the shipped roster and templates (`config/workflows/`).
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

fn get(key: &str, url: &str) -> Option<(u16, Value)> {
    let r = client().get(url).bearer_auth(key).send().ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().unwrap_or(Value::Null)))
}

fn post(key: &str, url: &str, body: &Value) -> (u16, Value) {
    let r = client().post(url).bearer_auth(key).json(body).send().expect("post");
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

#[test]
fn http_starts_lists_and_refuses_on_the_embedded_bus() {
    let dir = tempfile::tempdir().expect("dir");
    copy_templates(dir.path());
    let port = free_port();
    let config = write_test_config_with(dir.path(), &shipped_roster(), Some(port));
    let mut node = Node::start(&config, None, "solo", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    wait_blocking(WAIT, "the node is ready", || get("", &format!("{base}/readyz")).filter(|(s, _)| *s == 200));
    // The first-run admin key: an admin may start a workflow for a tenant (tests/auth.rs: tenant keys).
    let key = admin_key(dir.path());

    let (status, body) = post(
        &key,
        &format!("{base}/v1/workflows"),
        &json!({"template": "landing-page", "input": {"product": "socks"}, "tenant_id": "acme"}),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["workflow"]["id"].as_str().expect("id").to_string();
    assert_eq!(body["poll_url"], format!("/v1/workflows/{id}"));
    let (_, wf) = wait_blocking(WAIT, "the landing page workflow succeeds", || {
        get(&key, &format!("{base}/v1/workflows/{id}")).filter(|(s, w)| *s == 200 && w["status"] == "succeeded")
    });
    let steps = wf["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 5);
    for s in steps {
        assert_eq!(s["status"], "succeeded", "{s}");
        assert_eq!(s["agent"], format!("genesis.{}", s["id"].as_str().expect("id")), "capability routed by name: {s}");
        assert!(s["route"].as_str().expect("route").contains("named after capability"), "{s}");
    }
    assert_eq!(wf["tenant_id"], "acme");

    let (status, list) = get(&key, &format!("{base}/v1/workflows?status=succeeded&tenant=acme")).expect("list");
    assert_eq!(status, 200);
    assert!(list["workflows"].as_array().expect("list").iter().any(|w| w["id"] == id.as_str()), "{list}");
    let (status, _) = get(&key, &format!("{base}/v1/workflows?status=nope")).expect("list");
    assert_eq!(status, 400);

    // The same id again is the same workflow (200), not a second one.
    let (status, again) =
        post(&key, &format!("{base}/v1/workflows"), &json!({"template": "landing-page", "workflow_id": id}));
    assert_eq!((status, again["workflow"]["id"].as_str()), (200, Some(id.as_str())), "{again}");

    let (status, body) = post(&key, &format!("{base}/v1/workflows/{id}/cancel"), &json!({}));
    assert_eq!(status, 409, "a succeeded workflow cannot be cancelled: {body}");
    let (status, _) = post(&key, &format!("{base}/v1/workflows/{id}/retry"), &json!({}));
    assert_eq!(status, 409);
    let (status, _) = get(&key, &format!("{base}/v1/workflows/nope")).expect("get");
    assert_eq!(status, 404);

    // Invalid plans are refused before anything runs, naming the step and the rule.
    let cycle = json!({"plan": {"steps": [
        {"id": "a", "agent": "genesis.qa", "needs": ["b"]}, {"id": "b", "agent": "genesis.qa", "needs": ["a"]}]}});
    let (status, body) = post(&key, &format!("{base}/v1/workflows"), &cycle);
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().expect("msg").contains("cycle"), "{body}");
    let (status, body) = post(&key, &format!("{base}/v1/workflows"), &json!({"template": "nope"}));
    assert_eq!(status, 400);
    assert!(body["error"].as_str().expect("msg").contains("business, landing-page"), "{body}");
    let (status, _) =
        post(&key, &format!("{base}/v1/workflows"), &json!({"template": "business", "tenant_id": "a{b}"}));
    assert_eq!(status, 400);
    assert!(node.terminate().success());
}

#[test]
fn the_cli_and_the_orchestrate_agent_run_workflows_on_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    copy_templates(dir.path());
    let config = write_test_config_with(dir.path(), &shipped_roster(), None);
    let mut node = Node::spawn(&config, &redis, "n1", dir.path());

    let (ok, out, err) = cli(
        &config,
        &redis,
        &[
            "workflow",
            "start",
            "--template",
            "business",
            "--input",
            r#"{"idea": "pet food"}"#,
            "--tenant",
            "t1",
            "--business",
            "b-1",
        ],
    );
    assert!(ok, "{err}");
    let id = out.trim().to_string();
    let wf: Value = wait_blocking(WAIT, "the business workflow succeeds", || {
        let (ok, out, _) = cli(&config, &redis, &["workflow", "get", &id, "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (ok && v["status"] == "succeeded").then_some(v)
    });
    assert_eq!((wf["business_id"].as_str(), wf["tenant_id"].as_str()), (Some("b-1"), Some("t1")));
    let (ok, text, _) = cli(&config, &redis, &["workflow", "get", &id]);
    assert!(ok);
    for want in ["status:      succeeded", "genesis.monitoring", "named after capability"] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    // `task tree` of a step: the steps it needs and the steps that need it, with their tasks.
    let qa = wf["steps"].as_array().expect("steps").iter().find(|s| s["id"] == "qa").expect("qa step");
    let (ok, tree, err) = cli(&config, &redis, &["task", "tree", qa["task_id"].as_str().expect("task"), "--json"]);
    assert!(ok, "{err}");
    let tree: Value = serde_json::from_str(&tree).expect("json");
    let steps = |k: &str| -> Vec<String> {
        let mut v: Vec<String> =
            tree[k].as_array().expect(k).iter().filter_map(|n| n["step"].as_str().map(String::from)).collect();
        v.sort();
        v
    };
    assert_eq!(steps("parents"), ["backend", "frontend"], "{tree}");
    assert_eq!(steps("children"), ["deploy"], "{tree}");
    assert_eq!(tree["workflow"]["id"], id.as_str());
    // … and of a reply_to chain: the hop before and the hop after.
    let (ok, first, _) = cli(
        &config,
        &redis,
        &[
            "publish",
            "--topic",
            "genesis.idea.generate",
            "--payload",
            "{}",
            "--reply-to",
            "genesis.build,genesis.deploy",
        ],
    );
    assert!(ok);
    let first = first.trim().to_string();
    let chain: Value = wait_blocking(WAIT, "the chain has run", || {
        let (_, out, _) = cli(&config, &redis, &["task", "tree", &first, "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        let kids = v["children"].as_array()?;
        (kids.len() == 2 && kids.iter().all(|k| k["status"] == "succeeded")).then_some(v)
    });
    let middle = chain["children"][0]["task_id"].as_str().expect("hop").to_string();
    let (ok, text, _) = cli(&config, &redis, &["task", "tree", &middle]);
    assert!(ok);
    assert!(text.contains(&format!("{first} genesis.idea.generate succeeded (reply_to parent)")), "{text}");
    assert!(text.contains("genesis.deploy succeeded (reply)"), "{text}");

    let (ok, list, _) = cli(&config, &redis, &["workflow", "list", "--status", "succeeded", "--tenant", "t1"]);
    assert!(ok && list.contains(&id), "{list}");
    let (ok, _, err) = cli(&config, &redis, &["workflow", "cancel", &id]);
    assert!(!ok && err.contains("succeeded"), "{err}");
    let (ok, _, err) = cli(&config, &redis, &["workflow", "start", "--template", "nope"]);
    assert!(!ok && err.contains("no workflow template `nope`"), "{err}");

    // A task on genesis.meta.orchestrate starts one too; its result names the workflow.
    let (ok, task, err) = cli(
        &config,
        &redis,
        &[
            "publish",
            "--topic",
            "genesis.meta.orchestrate",
            "--payload",
            r#"{"template": "landing-page", "input": {}}"#,
        ],
    );
    assert!(ok, "{err}");
    let task = task.trim().to_string();
    let record: Value = wait_blocking(WAIT, "the orchestrate task succeeds", || {
        let (ok, out, _) = cli(&config, &redis, &["task", "get", &task, "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (ok && v["status"] == "succeeded").then_some(v)
    });
    let started = record["result"]["workflow_id"].as_str().expect("workflow id").to_string();
    assert_eq!(started, format!("wf-{task}"), "derived from the task id: a re-run finds it");
    wait_blocking(WAIT, "the orchestrated workflow succeeds", || {
        let (_, out, _) = cli(&config, &redis, &["workflow", "get", &started, "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (v["status"] == "succeeded").then_some(())
    });
    // A planner agent writes the plan (here the simulated architect answers with one).
    let planned = json!({"planner": "genesis.architect", "input": {"simulate": {"output": {"plan": {"steps": [
        {"id": "write", "agent": "genesis.content"}, {"id": "check", "capability": "qa", "needs": ["write"]}]}}}}});
    let (ok, ptask, err) =
        cli(&config, &redis, &["publish", "--topic", "genesis.meta.orchestrate", "--payload", &planned.to_string()]);
    assert!(ok, "{err}");
    let planned_id = format!("wf-{}", ptask.trim());
    let wf: Value = wait_blocking(WAIT, "the planned workflow succeeds", || {
        let (_, out, _) = cli(&config, &redis, &["workflow", "get", &planned_id, "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (v["status"] == "succeeded").then_some(v)
    });
    let agents: Vec<&str> = wf["steps"].as_array().expect("steps").iter().filter_map(|s| s["agent"].as_str()).collect();
    assert_eq!(agents, ["genesis.content", "genesis.qa"]);

    // A plan that breaks a rule kills the orchestrate task at once, with the rule in its error.
    let (ok, bad, _) = cli(
        &config,
        &redis,
        &[
            "publish",
            "--topic",
            "genesis.meta.orchestrate",
            "--payload",
            r#"{"plan": {"steps": [{"id": "a", "agent": "genesis.nope"}]}}"#,
        ],
    );
    assert!(ok);
    let dead: Value = wait_blocking(WAIT, "the bad plan's task is dead", || {
        let (_, out, _) = cli(&config, &redis, &["task", "get", bad.trim(), "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (v["status"] == "dead").then_some(v)
    });
    assert_eq!(dead["attempts"], 1, "{dead}");
    assert!(dead["error"].as_str().expect("error").contains("unknown_agent"), "{dead}");
    assert!(node.terminate().success());
}
