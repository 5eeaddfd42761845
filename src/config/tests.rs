use super::*;
use std::time::Duration;

const KNOWN: &[&str] = &["simulated", "http"];
const GENESIS: &str = "config/genesis.toml";
const AGENTS: &str = "config/agents.toml";

fn no_env(_: &str) -> Option<String> {
    None
}

fn shipped(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(file)
}

fn genesis(text: &str) -> Result<validate::GenesisParts, ConfigError> {
    genesis_from_str(Path::new(GENESIS), text, &no_env)
}

fn roster(text: &str) -> Result<Roster, ConfigError> {
    roster_from_str(Path::new(AGENTS), text, KNOWN, &no_env)
}

fn genesis_err(text: &str) -> String {
    genesis(text).expect_err("must be rejected").to_string()
}

fn roster_err(text: &str) -> String {
    roster(text).expect_err("must be rejected").to_string()
}

/// `n` agents `genesis.a0`, `genesis.a1`, … followed by `extra` (appended to the last one).
fn agents(n: usize, extra: &str) -> String {
    let mut text: String = (0..n).map(|i| format!("[[agent]]\nname = \"genesis.a{i}\"\n")).collect();
    text.push_str(extra);
    text
}

#[test]
fn shipped_config_loads_with_defaults_and_overrides() {
    let config =
        load_with_env(&shipped("genesis.toml"), &["simulated", "orchestrate"], &no_env).expect("shipped config loads");
    // The shipped workflow templates are loaded (and were validated against the roster).
    assert_eq!(config.settings.workflows.templates.names(), ["business", "landing-page"]);
    let mut defaults = RuntimeSettings::defaults("node-1");
    defaults.workflows.templates = config.settings.workflows.templates.clone();
    assert_eq!(config.settings, defaults);
    assert!(config.redis.url.is_none());
    assert!(!config.simulated_steering, "pay/report_to are off unless [executors.simulated] steering = true");
    assert_eq!(config.http_addr, Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
    assert_eq!(config.source, shipped("genesis.toml"));

    let agents = &config.roster.agents;
    assert_eq!(agents.len(), 23);
    assert_eq!(agents[0].name, "genesis.build");
    assert_eq!(agents[22].name, "genesis.meta.orchestrate");
    for a in agents {
        assert_eq!(a.topic.as_str(), a.name, "topic defaults to name");
        assert_eq!(a.concurrency, 4);
        let expected = if a.name == "genesis.meta.orchestrate" { "orchestrate" } else { "simulated" };
        assert_eq!(a.executor.name(), expected);
    }
    let get = |name: &str| config.roster.by_name(name).expect("agent present");
    let secs = Duration::from_secs;
    assert_eq!((get("genesis.build").timeout, get("genesis.build").max_retries), (secs(600), 3));
    assert_eq!((get("genesis.deploy").timeout, get("genesis.deploy").max_retries), (secs(1200), 2));
    let idea = get("genesis.idea.generate");
    assert_eq!((idea.retry_delay, idea.timeout), (secs(10), secs(300)));
    let meta = get("genesis.meta.orchestrate");
    assert_eq!((meta.timeout, meta.max_retries), (secs(300), 3));
    let qa = get("genesis.qa");
    assert_eq!((qa.retry_delay, qa.timeout, qa.max_retries), (secs(5), secs(120), 3));
}

#[test]
fn shipped_config_takes_env_overrides() {
    let env = |name: &str| match name {
        "GENESIS_NODE_ID" => Some("worker-7".to_string()),
        "GENESIS_REDIS_URL" => Some("redis://redis:6379/0".to_string()),
        _ => None,
    };
    let config = load_with_env(&shipped("genesis.toml"), &["simulated", "orchestrate"], &env).expect("loads");
    assert_eq!(config.settings.node_id, "worker-7");
    assert_eq!(
        config
            .redis
            .url
            .as_ref()
            .map(|u| genesis_actors::secret::ExposeSecret::expose_secret(u).to_string())
            .as_deref(),
        Some("redis://redis:6379/0")
    );
}

#[test]
fn empty_files_mean_defaults() {
    let parts = genesis("").expect("empty genesis.toml is valid");
    assert_eq!(parts.settings, RuntimeSettings::defaults("node-1"));
    assert_eq!(parts.roster, "agents.toml");
    assert_eq!(roster("").expect("empty roster is valid"), Roster::default());
}

#[test]
fn values_are_read() {
    let text = "[bus]\nredis_url = \"rediss://h:6380\"\nblock = \"250ms\"\nmax_deliveries = 9\n\
                [retry]\nmultiplier = 3\n[http]\naddr = \"\"\n[supervision]\nroot_max_restarts = 0\n";
    let parts = genesis(text).expect("valid");
    assert_eq!(parts.redis_url.as_deref(), Some("rediss://h:6380"));
    assert_eq!(parts.settings.bus.block, Duration::from_millis(250));
    assert_eq!(parts.settings.bus.max_deliveries, 9);
    assert_eq!(parts.settings.retry_backoff.multiplier, 3.0);
    assert_eq!(parts.settings.supervision.root.max_restarts, 0);
    assert_eq!(parts.http_addr, None);
}

#[test]
fn documented_error_messages() {
    assert_eq!(
        roster_err(&agents(4, "concurrency = 0\n")),
        "config/agents.toml: agent[3].concurrency = 0: must be between 1 and 10000 (agent genesis.a3)"
    );
    assert_eq!(
        genesis_err("[bus]\nredis_url = \"http://x\""),
        "config/genesis.toml: bus.redis_url = \"http://x\": must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://"
    );
    assert_eq!(
        genesis_err("[liveness]\nheartbeat_ttl = \"1s\""),
        "config/genesis.toml: liveness.heartbeat_ttl = \"1s\": must be longer than liveness.heartbeat_interval (\"2s\")"
    );
    let text = agents(5, "[[agent]]\nname = \"genesis.a2\"\n");
    assert_eq!(
        roster_err(&text),
        "config/agents.toml: agent[5].name = \"genesis.a2\": duplicate agent name (also agent[2])"
    );
}

#[test]
fn each_check_names_key_and_value() {
    let cases: &[(&str, &str)] = &[
        ("[node]\nid = \"a/b\"", "node.id = \"a/b\""),
        ("[node]\nid = \"\"", "node.id = \"\": must not be empty"),
        ("[bus]\nblock = \"5x\"", "bus.block = \"5x\": not a duration"),
        ("[bus]\nblock = \"0s\"", "bus.block = \"0s\": must be longer than 0"),
        ("[bus]\nmax_payload_bytes = 0", "bus.max_payload_bytes = 0: must be between 1 and"),
        ("[bus]\nmax_deliveries = 0", "bus.max_deliveries = 0: must be at least 1"),
        (
            "[bus]\nreconnect_max = \"10ms\"",
            "bus.reconnect_max = \"10ms\": must not be shorter than bus.reconnect_initial",
        ),
        ("[supervision]\nagent_max_restarts = -1", "supervision.agent_max_restarts = -1: must be at least 0"),
        (
            "[supervision]\nrestart_backoff_initial = \"1m\"",
            "supervision.restart_backoff_max = \"5s\": must not be shorter",
        ),
        ("[retry]\nmultiplier = 0.5", "retry.multiplier = 0.5: must be a number of at least 1.0"),
        ("[bus]\nredis_url = \"http://u:pw@h/0\"", "bus.redis_url = \"http://***@h/***\": must start"),
        ("[bus]\nredis_url = \"redis+sentinel://h:1\"", "bus.redis_url = \"redis+sentinel://h:1\": names no master"),
        ("[bus]\npublish_replicas = 2", "bus.publish_replicas = 2: needs Redis replicas"),
        ("[http]\naddr = \"localhost\"", "http.addr = \"localhost\": must be an IP address and port"),
        ("roster = \"\"", "roster = \"\": must name the roster file"),
        (
            "[telemetry]\notlp_endpoint = \"localhost:4317\"",
            "telemetry.otlp_endpoint = \"localhost:4317\": must start with http:// or https:// (or be empty)",
        ),
        ("[telemetry]\notlp_endpoint = \"http:/c:4317\"", "otlp_endpoint = \"http:/c:4317\": must start with http://"),
        ("[telemetry]\notlp_endpoint = \"http://\"", "otlp_endpoint = \"http://\": is not a valid URL (empty host)"),
        ("[telemetry]\notlp_endpoint = \"http://c:99999\"", "is not a valid URL (invalid port number)"),
        (
            "[payments.notify]\nalerts_webhook = \"https://exa mple.com/api/webhooks/1/secret\"",
            "payments.notify.alerts_webhook = \"https://exa mple.com/***\": is not a valid URL (invalid \
             international domain name) (or be empty to disable)",
        ),
        (
            "[payments.notify]\ndashboard_webhook = \"discord.com/api/webhooks/1/secret\"",
            "payments.notify.dashboard_webhook = \"discord.com/api/webhooks/1/secret\": must start with http:// or https://",
        ),
    ];
    for (text, expected) in cases {
        let err = genesis_err(text);
        assert!(err.starts_with("config/genesis.toml: ") && err.contains(expected), "{text:?} gave {err:?}");
    }
    let cases: &[(&str, &str)] = &[
        ("max_retries = 101\n", "agent[0].max_retries = 101: must be between 0 and 100 (agent genesis.a0)"),
        ("timeout = \"0s\"\n", "agent[0].timeout = \"0s\": must be longer than 0"),
        ("retry_delay = \"soon\"\n", "agent[0].retry_delay = \"soon\": not a duration"),
        ("executor = \"gpu\"\n", "agent[0].executor = \"gpu\": unknown executor (known: simulated, http)"),
        ("topic = \"Bad Topic\"\n", "agent[0].topic = \"Bad Topic\": topic `Bad Topic` may only contain"),
    ];
    for (extra, expected) in cases {
        let err = roster_err(&agents(1, extra));
        assert!(err.starts_with("config/agents.toml: ") && err.contains(expected), "{extra:?} gave {err:?}");
    }
}

#[test]
fn roster_specific_checks() {
    let err = roster_err("[[agent]]\ntopic = \"x\"\n");
    assert!(err.contains("agent[0].name: missing"), "{err}");
    let err = roster_err("[[agent]]\nname = \"Genesis.Up\"\n");
    assert!(
        err.contains("agent[0].topic = \"Genesis.Up\": ") && err.contains("(topic defaults to the agent name)"),
        "{err}"
    );
    let err = roster_err(&agents(2, "topic = \"genesis.a0\"\n"));
    assert!(
        err.contains("agent[1].topic = \"genesis.a0\": duplicate topic (also agent[0]) (agent genesis.a1)"),
        "{err}"
    );
    let err = roster_err(&format!("[defaults]\nconcurrency = 0\n{}", agents(3, "")));
    assert_eq!(err, "config/agents.toml: defaults.concurrency = 0: must be between 1 and 10000", "reported once");
    let err = roster_from_str(Path::new(AGENTS), &agents(1, ""), &["http"], &no_env).expect_err("unknown");
    assert!(
        err.to_string().contains("defaults.executor = \"simulated\": unknown executor (built-in default)"),
        "{err}"
    );
    let ok = roster(&agents(
        1,
        "topic = \"t.x\"\nconcurrency = 10000\nmax_retries = 0\nexecutor = \"http\"\nendpoint = \"http://127.0.0.1:9/x\"\n",
    ))
    .expect("valid");
    assert_eq!(
        (ok.agents[0].topic.as_str(), ok.agents[0].concurrency, ok.agents[0].executor.name()),
        ("t.x", 10000, "http")
    );
}

#[test]
fn executor_keys() {
    use genesis_actors::roster::ExecutorSpec;
    let known: &[&str] = &["simulated", "a2a", "http", "process"];
    let parse = |extra: &str| {
        roster_from_str(Path::new(AGENTS), &agents(1, extra), known, &|n: &str| {
            (n == "TOKEN").then(|| "s3cret".to_string())
        })
    };
    let ok = parse("executor = \"a2a\"\nendpoint = \"http://127.0.0.1:8101\"\nheaders = { Authorization = \"Bearer ${TOKEN}\" }\nrate = \"60/min\"\nburst = 5\ncircuit_failures = 2\ncircuit_open = \"3s\"\n")
        .expect("valid");
    let a = &ok.agents[0];
    let ExecutorSpec::A2a(ep) = &a.executor else { panic!("a2a expected: {:?}", a.executor) };
    assert_eq!(ep.url, "http://127.0.0.1:8101/");
    assert_eq!(ep.headers.len(), 1);
    assert_eq!((ep.headers[0].0.as_str(), ep.headers[0].1.expose()), ("Authorization", "Bearer s3cret"));
    assert!(!format!("{a:?}").contains("s3cret"), "a header value never prints");
    let rate = a.rate.expect("rate");
    assert_eq!((rate.count, rate.per, rate.burst), (60, Duration::from_secs(60), 5));
    assert_eq!((a.breaker.failures, a.breaker.open_for), (2, Duration::from_secs(3)));

    let ok =
        parse("executor = \"process\"\ncommand = [\"python3\", \"a.py\"]\nenv = { MODE = \"x\" }\n").expect("valid");
    let ExecutorSpec::Process(p) = &ok.agents[0].executor else { panic!("process expected") };
    assert_eq!((p.command.len(), p.env.get("MODE").map(String::as_str)), (2, Some("x")));

    let cases: &[(&str, &str)] = &[
        ("executor = \"a2a\"\n", "agent[0].endpoint: missing: executor \"a2a\" needs the agent's base URL"),
        (
            "executor = \"http\"\nendpoint = \"ftp://x\"\n",
            "agent[0].endpoint = \"ftp://x\": must start with http:// or https://",
        ),
        ("executor = \"process\"\n", "agent[0].command: missing: executor \"process\" needs argv"),
        (
            "executor = \"process\"\ncommand = [\"x\"]\nendpoint = \"http://a\"\n",
            "agent[0].endpoint: not used by executor \"process\"",
        ),
        ("endpoint = \"http://a\"\n", "agent[0].endpoint: not used by executor \"simulated\""),
        (
            "executor = \"http\"\nendpoint = \"http://a\"\nheaders = { \"Bad Name\" = \"v\" }\n",
            "agent[0].headers.Bad Name: not a valid header name",
        ),
        ("rate = \"lots\"\n", "agent[0].rate = \"lots\": not a rate"),
        ("burst = 3\n", "agent[0].burst = 3: only meaningful with `rate`"),
        ("rate = \"1/s\"\nburst = 0\n", "agent[0].burst = 0: must be between 1 and 1000000"),
        ("circuit_failures = 0\n", "agent[0].circuit_failures = 0: must be between 1 and 10000"),
    ];
    for (extra, expected) in cases {
        let err = parse(extra).expect_err("must be rejected").to_string();
        assert!(err.contains(expected), "{extra:?} gave {err:?}");
    }
}

#[test]
fn valid_urls_are_kept_as_written() {
    let text = "[telemetry]\notlp_endpoint = \"HTTP://collector:4317\"\n\
                [payments.notify]\ndashboard_webhook = \"https://discord.com/api/webhooks/1/t\"\n";
    let parts = genesis(text).expect("valid");
    assert_eq!(parts.telemetry.otlp_endpoint.as_deref(), Some("HTTP://collector:4317"));
    assert!(parts.payments.notify.dashboard_webhook.is_some());
}

#[test]
fn all_problems_are_reported_one_per_line() {
    let err = genesis_err("[bus]\nblock = \"x\"\nmax_deliveries = 0\n[node]\nid = \"\"\n");
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(err.lines().all(|l| l.starts_with("config/genesis.toml: ")), "{err}");
}

#[test]
fn unknown_keys_are_rejected_and_named() {
    let err = genesis_err("[bus]\nblock = \"1s\"\nbolck = \"1s\"\n");
    assert!(err.starts_with("config/genesis.toml: bus.bolck: "), "{err}");
    assert!(err.contains("unknown field `bolck`") && err.contains("line 3"), "{err}");
    let err = genesis_err("[buss]\nblock = \"1s\"\n");
    assert!(err.contains("unknown field `buss`"), "{err}");
    let err = roster_err(&agents(3, "timeout_s = 5\n"));
    assert!(
        err.starts_with("config/agents.toml: agent[2].timeout_s: ") && err.contains("unknown field `timeout_s`"),
        "{err}"
    );
    let err = roster_err("[defaults]\nname = \"x\"\n");
    assert!(err.contains("defaults.name") && err.contains("unknown field `name`"), "{err}");
}

#[test]
fn type_and_syntax_errors_keep_tomls_message() {
    let err = roster_err(&agents(2, "concurrency = \"four\"\n"));
    assert!(err.starts_with("config/agents.toml: agent[1].concurrency: "), "{err}");
    assert!(err.contains("line") && err.contains("\"four\""), "{err}");
    let err = genesis_err("[bus\nblock = 1");
    assert!(err.starts_with("config/genesis.toml: ") && err.contains("line 1"), "{err}");
}

#[test]
fn interpolation_errors_name_key_value_variable_and_fix_all_at_once() {
    let err = genesis_err("[node]\n\nid = \"${GENESIS_TEST_UNSET}\"\n[bus]\nblock = \"${1BAD}\"\n");
    assert_eq!(
        err,
        "config/genesis.toml: bus.block = \"${1BAD}\": invalid variable name `1BAD` in `${1BAD}` (expected \
         `${NAME}` or `${NAME:-default}`)\n\
         config/genesis.toml: node.id = \"${GENESIS_TEST_UNSET}\": environment variable GENESIS_TEST_UNSET is \
         not set (write `${GENESIS_TEST_UNSET:-default}` to give a default)"
    );
}

#[test]
fn expanded_values_are_content_not_toml_and_never_shown_in_errors() {
    let env = |name: &str| match name {
        "ID" => Some("n\"1".to_string()),
        "PW" => Some("hunter2".to_string()),
        _ => None,
    };
    // A value with a quote lands in the string as is (the old text rewrite had to escape it).
    let err = genesis_from_str(Path::new(GENESIS), "[node]\nid = \"${ID}\"", &env).expect_err("bad id");
    assert!(err.to_string().contains("node.id = \"n\\\"1\": may only contain"), "{err}");
    // A type error quotes the line as written, not the expanded value.
    let text = "[bus]\nredis_url = \"redis://:${PW}@h\"\nmax_deliveries = \"${PW}\"\n";
    let err = genesis_from_str(Path::new(GENESIS), text, &env).expect_err("wrong type").to_string();
    assert!(err.starts_with("config/genesis.toml: bus.max_deliveries: ") && err.contains("line 3"), "{err}");
    assert!(err.contains("invalid type: string \"${PW}\" (expanded), expected i64"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn roster_path_is_relative_to_genesis_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("roster");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::write(dir.path().join("genesis.toml"), "roster = \"roster/${ROSTER:-mine.toml}\"\n").expect("write");
    std::fs::write(sub.join("mine.toml"), agents(2, "")).expect("write");
    let config = load_with_env(&dir.path().join("genesis.toml"), KNOWN, &no_env).expect("loads");
    assert_eq!(config.roster.agents.len(), 2);

    std::fs::write(dir.path().join("genesis.toml"), "roster = \"nope.toml\"\n").expect("write");
    let err = load_with_env(&dir.path().join("genesis.toml"), KNOWN, &no_env).expect_err("missing roster");
    let expected = format!("cannot read {}: ", dir.path().join("nope.toml").display());
    assert!(err.to_string().starts_with(&expected), "{err}");
}

#[test]
fn missing_file_is_named() {
    let err = load_with_env(Path::new("config/does-not-exist.toml"), KNOWN, &no_env).expect_err("missing");
    assert_eq!(err.to_string(), "cannot read config/does-not-exist.toml: No such file or directory (os error 2)");
}

#[test]
fn key_path_heuristic() {
    let text = "a = 1\n[bus]\nx = 2\n[[agent]]\n[[agent]]\n  y = 3 # c\n[t.u]\n";
    let at = |needle: &str| key_path_at(text, text.find(needle).expect("needle"));
    assert_eq!(at("a = 1").as_deref(), Some("a"));
    assert_eq!(at("x = 2").as_deref(), Some("bus.x"));
    assert_eq!(at("y = 3").as_deref(), Some("agent[1].y"));
    assert_eq!(at("3 #").as_deref(), Some("agent[1].y"));
    assert_eq!(at("[t.u]").as_deref(), Some("t.u"));
}

#[test]
fn node_id_from_elsewhere_uses_the_same_rules() {
    assert_eq!(validate_node_id("--node-id", "worker-2").expect("valid"), "worker-2");
    let err = validate_node_id("--node-id", "a/b").expect_err("slash");
    assert_eq!(err.to_string(), "--node-id = \"a/b\": may only contain letters, digits, '.', '_' and '-'");
    assert!(validate_node_id("--node-id", &"n".repeat(65)).is_err());
}

/// The defaults (in code and in the shipped file) let a reviewer approve what is held for review, and
/// let any amount the hard cap allows fit every budget.
#[test]
fn payment_defaults_are_coherent() {
    let shipped =
        load_with_env(&shipped("genesis.toml"), &["simulated", "orchestrate"], &no_env).expect("shipped config loads");
    let code = genesis("").expect("defaults are valid");
    for (what, p) in [("shipped", &shipped.payments), ("code", &code.payments)] {
        let (r, b) = (&p.rules, &p.budgets);
        for budget in [b.agent_daily_cents, b.business_total_cents, b.tenant_daily_cents] {
            assert!(
                r.review_above_cents < budget,
                "{what}: review threshold {} ≥ budget {budget}",
                r.review_above_cents
            );
            assert!(r.hard_cap_cents <= budget, "{what}: hard cap {} > budget {budget}", r.hard_cap_cents);
        }
        assert!(r.auto_approve_cents <= r.review_above_cents && r.review_above_cents < r.hard_cap_cents, "{what}");
    }
    assert_eq!(
        shipped.payments.rules,
        genesis_actors::payments::policy::PaymentRules {
            known_agents: shipped.payments.rules.known_agents.clone(),
            ..code.payments.rules.clone()
        }
    );
    assert_eq!(shipped.payments.budgets, code.payments.budgets, "the file says what the code does");
}

/// Thresholds that contradict each other are refused, and the message names both keys.
#[test]
fn contradicting_payment_thresholds_name_both_keys() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[payments]\nreview_above_cents = 50000\nhard_cap_cents = 1000000\n[payments.budgets]\nagent_daily_cents = 5000\nbusiness_total_cents = 2000000\ntenant_daily_cents = 2000000",
            "payments.review_above_cents = 50000: must be below payments.budgets.agent_daily_cents (5000)",
            "payments.hard_cap_cents = 1000000: must not exceed payments.budgets.agent_daily_cents (5000)",
        ),
        (
            "[payments]\nauto_approve_cents = 5000\nreview_above_cents = 4000",
            "payments.auto_approve_cents = 5000: must not exceed payments.review_above_cents (4000)",
            "",
        ),
        (
            "[payments.budgets]\ntenant_daily_cents = 15000",
            "payments.hard_cap_cents = 20000: must not exceed payments.budgets.tenant_daily_cents (15000)",
            "",
        ),
        (
            "[payments.budgets]\nbusiness_total_cents = 10000",
            "payments.review_above_cents = 10000: must be below payments.budgets.business_total_cents (10000)",
            "",
        ),
        (
            "[payments.fraud]\nvelocity_max_sum_cents = 15000",
            "payments.fraud.velocity_max_sum_cents = 15000: must not be below payments.hard_cap_cents (20000)",
            "",
        ),
        (
            "[payments]\nretention = \"1h\"\nreservation_ttl = \"2h\"",
            "payments.retention = \"1h\": must not be shorter than payments.reservation_ttl (\"2h\")",
            "",
        ),
    ];
    for (text, first, second) in cases {
        let err = genesis_err(text);
        assert!(err.contains(first), "{text}\n→ {err}");
        assert!(err.contains(second), "{text}\n→ {err}");
    }
    // No reviews at all (the threshold at the cap) is not a contradiction.
    let p = genesis("[payments]\nreview_above_cents = 20000\n[payments.budgets]\nagent_daily_cents = 20000\n");
    assert!(p.is_ok(), "{:?}", p.err().map(|e| e.to_string()));
}

#[test]
fn dead_letter_retention_and_its_per_agent_overrides() {
    let g = genesis("[bus]\ndlq_max_age = \"3d\"\ndlq_max_len = 500\ndlq_max_entry_bytes = 4096\n").expect("valid");
    let dlq = g.settings.bus.dlq;
    assert_eq!(
        (dlq.retention.max_age, dlq.retention.max_len, dlq.max_entry_bytes),
        (Duration::from_secs(3 * 86_400), 500, 4096)
    );
    let e = genesis_err("[bus]\ndlq_max_age = \"0s\"\ndlq_max_len = 0\ndlq_max_entry_bytes = 10\n");
    assert!(e.contains("bus.dlq_max_age = \"0s\": must be longer than 0"), "{e}");
    assert!(e.contains("bus.dlq_max_len = 0: must be at least 1"), "{e}");
    assert!(e.contains("bus.dlq_max_entry_bytes = 10: must be between 1024 and"), "{e}");

    let r = roster(&agents(2, "dlq_max_len = 7\ndlq_max_age = \"1h\"\n")).expect("valid");
    assert_eq!(r.agents[0].dlq, genesis_actors::bus::DlqOverride::default());
    assert_eq!(r.agents[1].dlq.max_len, Some(7));
    assert_eq!(r.agents[1].dlq.max_age, Some(Duration::from_secs(3600)));
    let e = roster_err(&agents(1, "dlq_max_len = -1\ndlq_max_age = \"soon\"\n"));
    assert!(e.contains("agent[0].dlq_max_len = -1: must be at least 1"), "{e}");
    assert!(e.contains("agent[0].dlq_max_age = \"soon\": not a duration"), "{e}");
    let e = roster_err("[defaults]\ndlq_max_len = 7\n");
    assert!(e.contains("dlq_max_len"), "a default for every agent belongs in [bus]: {e}");
}

/// The payment token key: a file of ≥ 32 bytes relative to genesis.toml, or the environment (which
/// wins); a short or unreadable key is named by its key, never shown.
#[test]
fn payment_token_key_from_file_or_environment() {
    use genesis_actors::payments::token::{sign, verify, Claims, TokenKey};
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("agents.toml"), agents(1, "")).expect("write");
    let config = dir.path().join("genesis.toml");
    let load = |text: &str, env: &dyn Fn(&str) -> Option<String>| {
        std::fs::write(&config, text).expect("write");
        load_with_env(&config, KNOWN, env)
    };
    let none = load("", &no_env).expect("no key configured");
    assert_eq!(none.payments.token_key, None, "the node then makes a random key");

    std::fs::write(dir.path().join("pay.key"), [7u8; 32]).expect("write");
    let from_file = load("[payments]\ntoken_key_file = \"pay.key\"\n", &no_env).expect("key file");
    assert_eq!(from_file.payments.token_key, TokenKey::from_bytes(vec![7; 32]).ok());

    let secret = "an-env-key-of-more-than-32-bytes-0123456789";
    let env = |name: &str| (name == "GENESIS_PAYMENT_TOKEN_KEY").then(|| secret.to_string());
    let from_env = load("[payments]\ntoken_key_file = \"pay.key\"\n", &env).expect("env key");
    let key = from_env.payments.token_key.expect("key");
    assert_eq!(Some(key.clone()), TokenKey::from_bytes(secret.as_bytes().to_vec()).ok(), "the environment wins");
    // Two nodes with the same key accept each other's tokens.
    let claims = Claims {
        task_id: genesis_actors::task::TaskId::generate(),
        agent: "genesis.a0".into(),
        business: "default".into(),
        tenant: Default::default(),
        expires_at_ms: u64::MAX,
        workflow: None,
    };
    let other_node = load("", &env).expect("env key").payments.token_key.expect("key");
    assert_eq!(verify(&other_node, &sign(&key, &claims), 0), Ok(claims));

    std::fs::write(dir.path().join("short.key"), "too short").expect("write");
    let err = load("[payments]\ntoken_key_file = \"short.key\"\n", &no_env).expect_err("short").to_string();
    assert!(err.contains("payments.token_key_file = \"short.key\": holds 9 bytes; a payment token key must be at least 32 random bytes; generate one with `head -c 32 /dev/urandom > FILE`"), "{err}");
    let err = load("[payments]\ntoken_key_file = \"missing.key\"\n", &no_env).expect_err("missing").to_string();
    assert!(err.contains("payments.token_key_file = \"missing.key\": cannot read"), "{err}");
    let short_env = |name: &str| (name == "GENESIS_PAYMENT_TOKEN_KEY").then(|| "hunter2".to_string());
    let err = load("", &short_env).expect_err("short env key").to_string();
    assert!(err.contains("GENESIS_PAYMENT_TOKEN_KEY: holds 7 bytes"), "{err}");
    assert!(!err.contains("hunter2"), "the key is never shown: {err}");
}
