//! The nodes' Prometheus `/metrics`, as evidence for check 9: how often an agent was unreachable
//! (`genesis_tasks_unavailable_total`), how often its circuit opened
//! (`genesis_circuit_transitions_total{state="open"}`) and how many tasks waited for an open circuit
//! (`genesis_circuit_wait_seconds_count`).
//!
//! Counters live in a node's memory and start at 0 with every start of the process, so a node is
//! scraped periodically and right before the harness kills it, and each lifetime's last scrape is
//! added to the totals. Increments after a lifetime's last scrape are missed (a node that exits on its
//! own, the moment between the last scrape and a kill): the totals are a lower bound, which is why
//! check 9 itself reads the task records, not these numbers.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One scrape's counters, by agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub unavailable: BTreeMap<String, u64>,
    pub circuit_opened: BTreeMap<String, u64>,
    pub circuit_waits: BTreeMap<String, u64>,
}

/// The counters summed over every node lifetime of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    #[serde(flatten)]
    pub sum: Sample,
    pub scrapes: u64,
    pub failed_scrapes: u64,
}

impl Totals {
    pub fn unavailable(&self) -> u64 {
        self.sum.unavailable.values().sum()
    }
    pub fn circuit_opened(&self) -> u64 {
        self.sum.circuit_opened.values().sum()
    }
    pub fn circuit_waits(&self) -> u64 {
        self.sum.circuit_waits.values().sum()
    }
}

fn add(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *to.entry(k.clone()).or_default() += v;
    }
}

/// The labels and value of one sample line, e.g. `genesis_x_total{agent="a",state="open"} 3`.
fn sample_line(line: &str) -> Option<(&str, BTreeMap<&str, &str>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find('{') {
        Some(i) => {
            let close = line[i..].find('}')? + i;
            let mut labels = BTreeMap::new();
            for pair in line[i + 1..close].split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = pair.split_once('=')?;
                labels.insert(k.trim(), v.trim().trim_matches('"'));
            }
            ((&line[..i], labels), &line[close + 1..])
        }
        None => {
            let (n, r) = line.split_once(char::is_whitespace)?;
            ((n, BTreeMap::new()), r)
        }
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    Some((name.0, name.1, value))
}

/// The counters of one `/metrics` text (OpenMetrics or Prometheus text format).
pub fn parse(text: &str) -> Sample {
    let mut s = Sample::default();
    for (name, labels, value) in text.lines().filter_map(sample_line) {
        let Some(agent) = labels.get("agent").map(|a| a.to_string()) else { continue };
        let n = if value.is_finite() && value > 0.0 { value as u64 } else { 0 };
        match name {
            "genesis_tasks_unavailable_total" => *s.unavailable.entry(agent).or_default() += n,
            "genesis_circuit_transitions_total" if labels.get("state") == Some(&"open") => {
                *s.circuit_opened.entry(agent).or_default() += n
            }
            "genesis_circuit_wait_seconds_count" => *s.circuit_waits.entry(agent).or_default() += n,
            _ => {}
        }
    }
    s
}

/// Scrapes the nodes' `/metrics` and keeps the totals over node lifetimes.
pub struct Scraper {
    http: reqwest::Client,
    /// The last scrape of each node's current lifetime, by node id.
    current: BTreeMap<String, Sample>,
    pub totals: Totals,
}

impl Scraper {
    pub fn new() -> anyhow::Result<Scraper> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        Ok(Scraper { http, current: BTreeMap::new(), totals: Totals::default() })
    }

    /// Scrape one node (a failure is counted, not an error: the node may be starting or dying).
    pub async fn scrape(&mut self, node: &str, port: u16) {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let text = async { self.http.get(&url).send().await?.error_for_status()?.text().await };
        match text.await {
            Ok(t) => {
                self.totals.scrapes += 1;
                self.current.insert(node.to_string(), parse(&t));
            }
            Err(_) => self.totals.failed_scrapes += 1,
        }
    }

    /// The last scrape of the node's current lifetime.
    pub fn current(&self, node: &str) -> Option<&Sample> {
        self.current.get(node)
    }

    /// The node's process ended (killed, exited, stopped): its last scrape counts in the totals.
    pub fn end_lifetime(&mut self, node: &str) {
        if let Some(s) = self.current.remove(node) {
            add(&mut self.totals.sum.unavailable, &s.unavailable);
            add(&mut self.totals.sum.circuit_opened, &s.circuit_opened);
            add(&mut self.totals.sum.circuit_waits, &s.circuit_waits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_by_agent_are_read_from_openmetrics_text() {
        let text = r#"# HELP genesis_tasks_unavailable Tasks requeued because the agent could not be reached.
# TYPE genesis_tasks_unavailable counter
genesis_tasks_unavailable_total{agent="genesis.research"} 7
genesis_tasks_unavailable_total{agent="genesis.seo"} 2
genesis_circuit_transitions_total{agent="genesis.research",state="open"} 3
genesis_circuit_transitions_total{agent="genesis.research",state="half_open"} 3
genesis_circuit_wait_seconds_count{agent="genesis.research"} 11
genesis_circuit_wait_seconds_sum{agent="genesis.research"} 4.5
genesis_node_up 1
# EOF
"#;
        let s = parse(text);
        assert_eq!(s.unavailable.get("genesis.research"), Some(&7));
        assert_eq!(s.unavailable.get("genesis.seo"), Some(&2));
        assert_eq!(s.circuit_opened.get("genesis.research"), Some(&3));
        assert_eq!(s.circuit_waits.get("genesis.research"), Some(&11));
        assert_eq!(s.circuit_opened.len(), 1);
    }

    #[test]
    fn lifetimes_add_up() {
        let mut sc = Scraper::new().expect("client");
        sc.current.insert("n1".into(), parse("genesis_tasks_unavailable_total{agent=\"a\"} 4\n"));
        sc.end_lifetime("n1");
        sc.current.insert("n1".into(), parse("genesis_tasks_unavailable_total{agent=\"a\"} 1\n"));
        sc.end_lifetime("n1");
        sc.end_lifetime("n2");
        assert_eq!(sc.totals.unavailable(), 5);
    }
}
