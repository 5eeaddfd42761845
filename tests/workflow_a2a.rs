//! The shipped `business` template (`config/workflows/business.toml`, 13 steps) end to end on real A2A
//! agents: every step's agent is `executor = "a2a"` in the roster, served by the real a2a-sdk test
//! agent (`tests/agents/a2a_agent.py`; one polled and one streaming instance share the steps), run by
//! a `genesis serve` node on a real Redis and started with `genesis workflow start`. What each agent
//! received is read from its own record (`/test/events`): the step's payload as the data part (with
//! the workflow context in its `workflow` field) and the task's ids in the message metadata.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use genesis_testkit::A2aAgent;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

/// The business template's steps, in its order, and the capability (so the agent) each names.
const STEPS: [(&str, &str); 13] = [
    ("idea", "idea.generate"),
    ("spec", "spec"),
    ("architect", "architect"),
    ("frontend", "frontend"),
    ("backend", "backend"),
    ("qa", "qa"),
    ("security", "security"),
    ("deploy", "deploy"),
    ("seo", "seo"),
    ("content", "content"),
    ("marketing", "marketing"),
    ("monitoring", "monitoring"),
    ("analytics", "analytics"),
];

/// A running node with its Redis, config and the two A2A agents behind its roster (dropped in this
/// order: the node first, its config directory last).
struct Setup {
    node: Node,
    polled: A2aAgent,
    streaming: A2aAgent,
    redis: RedisServer,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// Every step's agent is an a2a agent: the even ones (idea, architect, …) at the polled agent, the
    /// odd ones at the streaming one. `max_retries = 1`: a failing task is tried twice.
    fn start() -> Setup {
        let redis = RedisServer::start();
        let polled = A2aAgent::builder().start();
        let streaming = A2aAgent::builder().streaming(true).start();
        let dir = tempfile::tempdir().expect("dir");
        let mut roster = String::from(
            "[defaults]\nconcurrency = 4\nmax_retries = 1\nretry_delay = \"50ms\"\ntimeout = \"60s\"\nexecutor = \"a2a\"\n",
        );
        for (i, (_, capability)) in STEPS.iter().enumerate() {
            let url = if i % 2 == 0 { polled.url() } else { streaming.url() };
            roster.push_str(&format!("\n[[agent]]\nname = \"genesis.{capability}\"\nendpoint = \"{url}\"\n"));
        }
        let roster_path = dir.path().join("agents.toml");
        std::fs::write(&roster_path, roster).expect("roster");
        copy_templates(dir.path());
        let config = write_test_config(dir.path(), &roster_path);
        let (ok, _, err) = cli(&config, &redis, &["config", "check"]);
        assert!(ok, "the a2a roster and the business template pass config check: {err}");
        let node = Node::spawn(&config, &redis, "n1", dir.path());
        Setup { node, polled, streaming, redis, config, _dir: dir }
    }

    fn cli(&self, args: &[&str]) -> (bool, String, String) {
        cli(&self.config, &self.redis, args)
    }

    /// `genesis workflow start --template business …`; returns the workflow id.
    fn start_business(&self, input: &Value) -> String {
        let input = input.to_string();
        let args = [
            "workflow",
            "start",
            "--template",
            "business",
            "--input",
            &input,
            "--tenant",
            "acme",
            "--business",
            "biz-a2a",
        ];
        let (ok, out, err) = self.cli(&args);
        assert!(ok, "{err}\n{}", self.node.logs());
        out.trim().to_string()
    }

    fn wait_for(&self, id: &str, status: &str) -> Value {
        wait_blocking(WAIT, &format!("workflow {id} is {status}"), || {
            let (ok, out, _) = self.cli(&["workflow", "get", id, "--json"]);
            let v: Value = serde_json::from_str(&out).ok()?;
            (ok && v["status"] == status && v["outbox"].as_array().is_some_and(|o| o.is_empty())).then_some(v)
        })
    }

    /// The agent behind a step's capability.
    fn agent_of(&self, step: &str) -> &A2aAgent {
        let i = STEPS.iter().position(|(s, _)| *s == step).expect("a business step");
        if i % 2 == 0 {
            &self.polled
        } else {
            &self.streaming
        }
    }

    /// Every `send` both agents recorded, by Genesis task id, oldest first.
    fn sends(&self) -> BTreeMap<String, Vec<Value>> {
        let mut by_task: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut all: Vec<Value> = [&self.polled, &self.streaming].iter().flat_map(|a| events(a, "send")).collect();
        all.sort_by(|a, b| a["at"].as_f64().partial_cmp(&b["at"].as_f64()).expect("times"));
        for s in all {
            let id = s["metadata"]["genesis.task_id"].as_str().expect("every send names its task").to_string();
            by_task.entry(id).or_default().push(s);
        }
        by_task
    }
}

/// The agent's events of one kind, read with a blocking client (this test is not async).
fn events(agent: &A2aAgent, kind: &str) -> Vec<Value> {
    let url = format!("{}/test/events", agent.url());
    let all: Vec<Value> = reqwest::blocking::get(&url).and_then(|r| r.json()).expect("the agent's events");
    all.into_iter().filter(|e| e["kind"] == kind).collect()
}

fn step<'a>(wf: &'a Value, id: &str) -> &'a Value {
    wf["steps"].as_array().expect("steps").iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("step {id}"))
}

/// The data part of the artifact the test agent completes a task with (`{"echo", "metadata", …}`).
fn artifact_data(output: &Value) -> &Value {
    let a = &output["artifacts"][0];
    assert_eq!((a["name"].as_str(), &a["parts"][1]), (Some("result"), &json!({"text": "done"})), "{output}");
    &a["parts"][0]["data"]
}

#[test]
fn the_business_template_runs_on_real_a2a_agents() {
    let s = Setup::start();
    let request = json!({"idea": "tea subscriptions"});
    let id = s.start_business(&request);
    let wf = s.wait_for(&id, "succeeded");
    assert_eq!((wf["tenant_id"].as_str(), wf["business_id"].as_str()), (Some("acme"), Some("biz-a2a")));
    let sends = s.sends();

    for (name, capability) in STEPS {
        let st = step(&wf, name);
        assert_eq!(
            (st["status"].as_str(), st["agent"].as_str()),
            (Some("succeeded"), Some(&*format!("genesis.{capability}")))
        );
        let task = st["task_id"].as_str().expect("task id");
        // The output is the A2A agent's artifact, for this very task.
        let data = artifact_data(&st["output"]);
        assert_eq!(data["metadata"]["genesis.task_id"], task, "{name}: {data}");
        let got = sends.get(task).unwrap_or_else(|| panic!("{name}: the agent got no message for task {task}"));
        assert_eq!(got.len(), 1, "{name}: sent once");
        let sent = &got[0];
        assert_eq!(sent["task_id"], data["task_id"], "{name}: the artifact is of the A2A task the message started");
        let served_by: Vec<String> =
            events(s.agent_of(name), "send").iter().filter_map(|e| e["task_id"].as_str().map(String::from)).collect();
        assert!(
            served_by.iter().any(|t| Some(t.as_str()) == data["task_id"].as_str()),
            "{name}: served by its endpoint"
        );
        let method = if s.agent_of(name).streaming() { "SendStreamingMessage" } else { "SendMessage" };
        assert_eq!(sent["method"], method, "{name}");

        // The context reached the agent: ids in the message metadata, the workflow in the payload.
        let md = &sent["metadata"];
        assert_eq!(
            (md["genesis.tenant_id"].as_str(), md["genesis.correlation_id"].as_str()),
            (Some("acme"), Some(&*id))
        );
        let payload = &sent["data"];
        assert_eq!(payload["business_id"], "biz-a2a", "{name}");
        assert_eq!(
            payload["workflow"],
            json!({"id": id, "business_id": "biz-a2a", "tenant_id": "acme", "step": name, "run": 1.0}),
            "{name}"
        );
        assert_eq!(payload["input"], json!({"request": request}), "{name}: the template's input with the request");
        // Its needs are the outputs of the steps it needs, as the workflow recorded them.
        let needs: Vec<String> = st["needs"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().into()).collect();
        let got_needs: Vec<String> = payload["needs"].as_object().unwrap().keys().cloned().collect();
        let mut sorted = needs.clone();
        sorted.sort();
        assert_eq!(got_needs, sorted, "{name}");
        for n in &needs {
            let need_task = step(&wf, n)["task_id"].clone();
            assert_eq!(artifact_data(&payload["needs"][n])["metadata"]["genesis.task_id"], need_task, "{name} ← {n}");
        }
        // … and the agent says so in its answer.
        assert_eq!(data["workflow_step"]["workflow"]["step"], name);
        assert_eq!(data["workflow_step"]["needs"], json!(sorted));
    }
    assert_eq!(sends.len(), STEPS.len(), "no other task reached the agents (no compensation)");
    assert_eq!(wf["compensations"], Value::Null);
}

/// `content` (required) fails at its agent (TASK_STATE_FAILED) on both of its attempts: the workflow
/// fails, skips what needs it, and compensates the steps that succeeded (`deploy`, and `marketing`
/// if it succeeded first) at their A2A agents, latest completed first.
#[test]
fn a_step_the_a2a_agent_fails_fails_the_workflow_and_compensates() {
    let s = Setup::start();
    let steer = json!({"content": {"mode": "fail", "message": "the content model is down"}});
    let id = s.start_business(&json!({"idea": "bike repair", "steer": steer}));
    let wf = s.wait_for(&id, "failed");
    assert_eq!(wf["reason"], "step_failed", "{wf}");
    assert!(wf["error"].as_str().unwrap().contains("step content failed"), "{}", wf["error"]);
    let content = step(&wf, "content");
    assert_eq!((content["status"].as_str(), content["attempts"].as_u64()), (Some("failed"), Some(2)), "{content}");
    let error = content["error"].as_str().unwrap();
    assert!(error.starts_with("retries_exhausted:") && error.contains("the content model is down"), "{error}");
    for later in ["monitoring", "analytics"] {
        assert_eq!(
            (step(&wf, later)["status"].as_str(), &step(&wf, later)["task_id"]),
            (Some("skipped"), &Value::Null)
        );
    }
    let sends = s.sends();
    let content_sends = &sends[content["task_id"].as_str().unwrap()];
    let attempts: Vec<Option<f64>> = content_sends.iter().map(|m| m["metadata"]["genesis.attempt"].as_f64()).collect();
    assert_eq!(attempts, [Some(1.0), Some(2.0)], "one A2A task per attempt");

    // Compensations: each succeeded step that has one, latest completed first, all run at the agents.
    let comps = wf["compensations"].as_array().expect("compensations");
    let order: Vec<&str> = comps.iter().map(|c| c["step"].as_str().unwrap()).collect();
    let marketing = step(&wf, "marketing")["status"].as_str().unwrap();
    let expected: &[&str] = if marketing == "succeeded" { &["marketing", "deploy"] } else { &["deploy"] };
    assert_eq!(order, expected, "marketing is {marketing}");
    let mut seen_at = Vec::new();
    for c in comps {
        assert_eq!(c["status"], "succeeded", "{c}");
        let task = c["task_id"].as_str().unwrap();
        let got = &sends[task];
        assert_eq!(got.len(), 1, "{c}");
        let payload = &got[0]["data"];
        let undone = c["step"].as_str().unwrap();
        assert_eq!(payload["compensating"]["step"], undone);
        let action = if undone == "deploy" { "undeploy" } else { "stop_campaigns" };
        assert_eq!(payload["input"], json!({"action": action}), "the template's compensation input");
        assert_eq!(payload["workflow"]["id"], id.as_str());
        assert_eq!(payload["business_id"], "biz-a2a");
        seen_at.push(got[0]["at"].as_f64().unwrap());
    }
    assert!(seen_at.windows(2).all(|w| w[0] <= w[1]), "one after the other, in that order: {seen_at:?}");
}
