//! Traces: a 3-hop reply_to chain (idea → build → deploy) across two `genesis serve` processes is one
//! trace, received by an OTLP/HTTP receiver in the test, with messaging attributes and parent links; a
//! panic-and-replay shows up as an event on the replayed `process` span.
// Tests and benches report by panicking: unwrap/expect are allowed here (not in the crates).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// An OTLP/HTTP traces receiver on a background thread; returns its endpoint and the spans received.
fn receiver() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let sink = spans.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let sink = sink.clone();
                    async move {
                        if let Ok(req) = ExportTraceServiceRequest::decode(body) {
                            let mut all = sink.lock().expect("lock");
                            for rs in req.resource_spans {
                                for ss in rs.scope_spans {
                                    all.extend(ss.spans);
                                }
                            }
                        }
                        axum::http::StatusCode::OK
                    }
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    (format!("http://{addr}"), spans)
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv: &&KeyValue| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            AnyValue::BoolValue(b) => Some(b.to_string()),
            AnyValue::DoubleValue(d) => Some(d.to_string()),
            _ => None,
        }
    })
}

fn otel_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_string()), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into())]
}

#[test]
fn a_reply_chain_across_two_processes_is_one_trace() {
    let (endpoint, spans) = receiver();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).expect("dir");
    std::fs::create_dir_all(&b_dir).expect("dir");
    let a_roster = a_dir.join("agents.toml");
    std::fs::write(&a_roster, "[[agent]]\nname = \"genesis.idea.generate\"\n\n[[agent]]\nname = \"genesis.deploy\"\n")
        .expect("roster");
    let b_roster = b_dir.join("agents.toml");
    std::fs::write(&b_roster, "[[agent]]\nname = \"genesis.build\"\n").expect("roster");
    let a_config = write_test_config(&a_dir, &a_roster);
    let b_config = write_test_config(&b_dir, &b_roster);
    let env = otel_env(&endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut a = Node::start_with_env(&a_config, Some(&redis), "node-a", dir.path(), &env);
    let mut b = Node::start_with_env(&b_config, Some(&redis), "node-b", dir.path(), &env);
    for id in ["node-a", "node-b"] {
        let mut conn = redis.conn();
        wait_blocking(WAIT, "node up", || {
            redis::cmd("EXISTS").arg(format!("genesis:node:{id}")).query::<bool>(&mut conn).ok().filter(|e| *e)
        });
    }
    // Publish through the CLI (its PRODUCER span is the root), with a roster that knows every topic.
    let cli_config = dir.path().join("cli.toml");
    std::fs::copy(write_test_config(dir.path(), &shipped_roster()), &cli_config).expect("config");
    let publish = |payload: &str, reply: Option<&str>| {
        let mut cmd = Command::new(genesis_bin());
        cmd.arg("--config").arg(&cli_config).args([
            "publish",
            "--topic",
            "genesis.idea.generate",
            "--payload",
            payload,
        ]);
        if let Some(r) = reply {
            cmd.args(["--reply-to", r]);
        }
        let out = cmd.env("GENESIS_REDIS_URL", redis.url()).envs(env.iter().copied()).output().expect("publish");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let root_task = publish("{}", Some("genesis.build,genesis.deploy"));
    let crashing = publish(r#"{"simulate": {"panic_deliveries": 1}}"#, None);
    let (_, records) = wait_blocking(WAIT, "the deploy hop ran", || {
        let (ok, out, _) = cli(&cli_config, &redis, &["bus", "stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_str(out.trim()).ok()?;
        let deploy = stats.as_array()?.iter().find(|s| s["topic"] == "genesis.deploy")?.clone();
        (ok && deploy["length"].as_u64()? >= 1 && deploy["pending"] == 0 && deploy["lag"] == 0).then_some(((), deploy))
    });
    let _ = records;
    wait_blocking(WAIT, "the crashing task succeeded", || {
        cli_task(&cli_config, &redis, &crashing).filter(|t| t["status"] == "succeeded")
    });
    // Flush both nodes' spans.
    assert!(a.terminate().success());
    assert!(b.terminate().success());

    let spans = wait_blocking(WAIT, "the spans of the chain arrive", || {
        let all = spans.lock().expect("lock").clone();
        let process: Vec<&Span> = all.iter().filter(|s| s.name.ends_with(" process")).collect();
        (process.len() >= 4).then_some(all)
    });
    let by_task = |task: &str, name_suffix: &str| -> Option<Span> {
        spans
            .iter()
            .find(|s| s.name.ends_with(name_suffix) && attr(s, "genesis.task_id").as_deref() == Some(task))
            .cloned()
    };
    let root_publish = by_task(&root_task, " publish").expect("the CLI's publish span");
    let idea = by_task(&root_task, " process").expect("idea process span");
    let trace = root_publish.trace_id.clone();
    assert_eq!(idea.trace_id, trace, "idea continues the publisher's trace");
    assert_eq!(idea.parent_span_id, root_publish.span_id, "process is a child of publish");
    assert_eq!(idea.kind, 5, "CONSUMER");
    assert_eq!(root_publish.kind, 4, "PRODUCER");
    for (key, want) in [
        ("messaging.system", Some("redis")),
        ("messaging.destination.name", Some("genesis.idea.generate")),
        ("messaging.consumer.group.name", Some("genesis")),
        ("genesis.agent", Some("genesis.idea.generate")),
        ("genesis.node", Some("node-a")),
        ("genesis.attempt", Some("1")),
        ("genesis.tenant", Some("default")),
    ] {
        assert_eq!(attr(&idea, key).as_deref(), want, "{key}");
    }
    assert!(attr(&idea, "messaging.message.id").is_some() && attr(&idea, "genesis.worker").is_some());

    // Every span of the chain (three process spans, the publishes between them) shares the trace.
    let chain: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let hop = |topic: &str| {
        chain.iter().find(|s| s.name == format!("{topic} process")).copied().unwrap_or_else(|| {
            panic!("no {topic} process span in the trace: {:?}", chain.iter().map(|s| &s.name).collect::<Vec<_>>())
        })
    };
    let (build, deploy) = (hop("genesis.build"), hop("genesis.deploy"));
    assert_eq!(attr(build, "genesis.node").as_deref(), Some("node-b"), "the build hop ran in the other process");
    assert_eq!(attr(deploy, "genesis.node").as_deref(), Some("node-a"));
    let parent_of = |s: &Span| chain.iter().find(|p| p.span_id == s.parent_span_id).copied();
    let build_parent = parent_of(build).expect("build's parent");
    assert_eq!(build_parent.name, "genesis.build publish");
    assert_eq!(build_parent.parent_span_id, idea.span_id, "idea published the build task");
    let deploy_parent = parent_of(deploy).expect("deploy's parent");
    assert_eq!(deploy_parent.name, "genesis.deploy publish");
    assert_eq!(deploy_parent.parent_span_id, build.span_id, "build published the deploy task");

    // The crashed task: its replayed process span carries the redelivery event.
    let replayed = spans
        .iter()
        .find(|s| {
            attr(s, "genesis.task_id").as_deref() == Some(crashing.as_str())
                && attr(s, "genesis.deliveries").as_deref() == Some("2")
        })
        .expect("the replayed process span");
    assert!(
        replayed.events.iter().any(|e| e.name.contains("redelivered")),
        "{:?}",
        replayed.events.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
}
