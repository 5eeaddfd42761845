//! `agents.toml` → [`Roster`]: `[defaults]` fill in what an `[[agent]]` leaves out.

use super::checks::{duration, int, quote};
use super::files::{AgentFile, AgentsFile};
use super::issues::Issues;
use super::validate::DLQ_MAX_LEN_RANGE;
use genesis_actors::bus::DlqOverride;
use genesis_actors::roster::{AgentSpec, Roster};
use genesis_actors::task::TopicName;
use std::collections::HashMap;
use std::time::Duration;

/// Values used when `[defaults]` leaves a key out too.
const CONCURRENCY: usize = 4;
const MAX_RETRIES: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(120);
const EXECUTOR: &str = "simulated";

const CONCURRENCY_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;
const MAX_RETRIES_RANGE: std::ops::RangeInclusive<i64> = 0..=100;

/// The effective `[defaults]`, already checked (an invalid default is reported once, as
/// `defaults.<key>`, not again for each agent that inherits it).
struct Defaults {
    concurrency: usize,
    max_retries: u32,
    retry_delay: Duration,
    timeout: Duration,
    executor: String,
}

pub(crate) fn roster(file: AgentsFile, known_executors: &[&str], issues: &mut Issues) -> Roster {
    let d = &file.defaults;
    let executor = d.executor.clone().unwrap_or_else(|| EXECUTOR.to_string());
    let builtin = if d.executor.is_none() { " (built-in default)" } else { "" };
    check_executor(issues, "defaults.executor", &executor, known_executors, builtin);
    let defaults = Defaults {
        concurrency: int(issues, "defaults.concurrency", d.concurrency, CONCURRENCY, CONCURRENCY_RANGE),
        max_retries: int(issues, "defaults.max_retries", d.max_retries, MAX_RETRIES, MAX_RETRIES_RANGE),
        retry_delay: duration(issues, "defaults.retry_delay", d.retry_delay.as_deref(), RETRY_DELAY, false),
        timeout: duration(issues, "defaults.timeout", d.timeout.as_deref(), TIMEOUT, true),
        executor,
    };

    let mut names: HashMap<String, usize> = HashMap::new();
    let mut topics: HashMap<String, usize> = HashMap::new();
    let mut agents = Vec::with_capacity(file.agent.len());
    for (i, entry) in file.agent.into_iter().enumerate() {
        let first_issue = issues.len();
        let name = entry.name.clone();
        let spec = agent(i, entry, &defaults, known_executors, issues);
        let mut duplicate_name = false;
        if let Some(name) = &name {
            if let Some(&first) = names.get(name) {
                let problem = format!("duplicate agent name (also agent[{first}])");
                issues.push(format!("agent[{i}].name"), Some(quote(name)), problem);
                duplicate_name = true;
            } else {
                names.insert(name.clone(), i);
            }
        }
        if let Some(spec) = &spec {
            let topic = spec.topic.as_str();
            // A topic equal to a duplicate name is a duplicate too; the name's issue says it.
            let repeats_name = duplicate_name && topic == spec.name;
            match topics.get(topic) {
                Some(&first) if !repeats_name => {
                    let problem = format!("duplicate topic (also agent[{first}])");
                    issues.push(format!("agent[{i}].topic"), Some(quote(topic)), problem);
                }
                Some(_) => {}
                None => {
                    topics.insert(topic.to_string(), i);
                }
            }
        }
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            issues.annotate_since(first_issue, ".name", &format!(" (agent {name})"));
        }
        agents.extend(spec);
    }
    Roster { agents }
}

/// One `[[agent]]`; `None` if it has a problem (already recorded).
fn agent(
    i: usize,
    entry: AgentFile,
    defaults: &Defaults,
    known_executors: &[&str],
    issues: &mut Issues,
) -> Option<AgentSpec> {
    let first_issue = issues.len();
    let key = |k: &str| format!("agent[{i}].{k}");

    let name = entry.name.clone().unwrap_or_default();
    let name_ok = match check_name(&name) {
        Ok(()) => true,
        Err(problem) => {
            let value = (!name.is_empty()).then(|| quote(&name));
            let problem = if name.is_empty() { "missing: every [[agent]] needs a name" } else { problem };
            issues.push(key("name"), value, problem);
            false
        }
    };
    let (raw_topic, note) = match entry.topic.clone() {
        Some(topic) => (topic, ""),
        None => (name.clone(), " (topic defaults to the agent name)"),
    };
    let topic = match raw_topic.parse::<TopicName>() {
        Ok(topic) => Some(topic),
        Err(problem) => {
            // A topic derived from a bad name would only repeat the name's problem.
            if name_ok || note.is_empty() {
                issues.push(key("topic"), Some(quote(&raw_topic)), format!("{problem}{note}"));
            }
            None
        }
    };
    let concurrency = int(issues, &key("concurrency"), entry.concurrency, defaults.concurrency, CONCURRENCY_RANGE);
    let max_retries = int(issues, &key("max_retries"), entry.max_retries, defaults.max_retries, MAX_RETRIES_RANGE);
    let retry_delay = duration(issues, &key("retry_delay"), entry.retry_delay.as_deref(), defaults.retry_delay, false);
    let timeout = duration(issues, &key("timeout"), entry.timeout.as_deref(), defaults.timeout, true);
    let executor = match &entry.executor {
        Some(executor) => {
            check_executor(issues, &key("executor"), executor, known_executors, "");
            executor.clone()
        }
        None => defaults.executor.clone(),
    };
    let executor = super::executor::executor(issues, &key, executor, &entry);
    let rate = super::executor::rate(issues, &key, &entry);
    let breaker = super::executor::breaker(issues, &key, &entry);

    let dlq = DlqOverride {
        max_age: entry
            .dlq_max_age
            .as_deref()
            .map(|raw| duration(issues, &key("dlq_max_age"), Some(raw), Duration::ZERO, true)),
        max_len: entry.dlq_max_len.map(|raw| int(issues, &key("dlq_max_len"), Some(raw), 1, DLQ_MAX_LEN_RANGE)),
    };

    if issues.len() > first_issue {
        return None;
    }
    let topic = topic?;
    Some(AgentSpec { name, topic, concurrency, max_retries, retry_delay, timeout, executor, rate, breaker, dlq })
}

/// Agent names become actor names and consumer names (`<node>/<agent>`).
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 128 {
        Err("must have 1 to 128 characters")
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        Err("may only contain letters, digits, '.', '_' and '-'")
    } else {
        Ok(())
    }
}

fn check_executor(issues: &mut Issues, key: &str, executor: &str, known: &[&str], note: &str) {
    if !known.contains(&executor) {
        let problem = if known.is_empty() {
            format!("unknown executor{note} (no executors are available)")
        } else {
            format!("unknown executor{note} (known: {})", known.join(", "))
        };
        issues.push(key, Some(quote(executor)), problem);
    }
}
