//! The checker's report as text: the numbers and verdict of each check, then each violation.

use super::CheckReport;
use crate::record::AgentsMode;
use std::collections::BTreeMap;

impl CheckReport {
    pub fn print(&self) {
        self.print_checks();
        self.print_violations();
    }

    fn counts(&self) -> BTreeMap<&str, usize> {
        let mut checks: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            *checks.entry(v.check.as_str()).or_default() += 1;
        }
        checks
    }

    /// Print each violation (at most 50 per check).
    pub fn print_violations(&self) {
        if self.violations.is_empty() {
            return;
        }
        let checks = self.counts();
        println!("== {} violations", self.violations.len());
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            let n = shown.entry(v.check.as_str()).or_default();
            *n += 1;
            if *n <= 50 {
                println!("VIOLATION [{}] {}", v.check, v.detail);
            } else if *n == 51 {
                println!("VIOLATION [{}] ... and {} more", v.check, checks[v.check.as_str()] - 50);
            }
        }
    }

    /// "ok", or "VIOLATED (n)" for check number `n`.
    pub fn verdict(&self, n: &str) -> String {
        let k = self.of(n).len();
        if k == 0 {
            "ok".to_string()
        } else {
            format!("VIOLATED ({k})")
        }
    }

    /// Print the numbers and the verdict of checks 1 to 7, 9 and 10, and the outcomes by kind.
    pub fn print_checks(&self) {
        self.print_checks_to_7();
        self.print_checks_from_9();
    }

    /// Checks 1 to 7 (check 8, node lifecycle, is the harness's: it prints it between the two halves).
    pub fn print_checks_to_7(&self) {
        let verdict = |n: &str| self.verdict(n);
        println!("== checks");
        println!(
            "1. none lost ............ {}: published {}, succeeded {}, dead {} {:?}, missing {}, stuck {}",
            verdict("1"),
            self.published,
            self.succeeded,
            self.dead,
            self.dead_by_reason,
            self.missing,
            self.stuck
        );
        let pending: u64 = self.topics.values().map(|t| t.pending).sum();
        let retrying: u64 = self.topics.values().map(|t| t.retrying).sum();
        println!("2. nothing pending ...... {}: pending {pending}, retrying {retrying}", verdict("2"));
        println!(
            "3. bounded attempts ..... {}: highest recorded attempts {}",
            verdict("3"),
            self.max_attempts_recorded
        );
        println!(
            "4. at-least-once ........ {}: executions started {}, ended {}{}; duplicate executions explained by crashes: {} (node kill/exit {}, Redis outage {}, agent kill {}), by planned panics/crashes: {}, unexplained: {}",
            verdict("4"),
            self.starts,
            self.ends,
            if self.mode == AgentsMode::Outside { " (outside agents report starts only)" } else { "" },
            self.duplicates_explained_by_node_crash
                + self.duplicates_explained_by_redis_outage
                + self.duplicates_explained_by_agent_kill,
            self.duplicates_explained_by_node_crash,
            self.duplicates_explained_by_redis_outage,
            self.duplicates_explained_by_agent_kill,
            self.duplicates_explained_by_panic,
            self.duplicates_unexplained
        );
        println!(
            "5. money ................ {}: mandates {} {:?}, denials {:?}, usage hashes {}, decided events {}, approvals {}",
            verdict("5"),
            self.mandates,
            self.mandates_by_status,
            self.denied_by_code,
            self.usage_hashes,
            self.decided_events,
            self.approval_events
        );
        for (k, v) in &self.max_usage {
            println!("     highest {k}: {v}");
        }
        let lens: Vec<String> =
            self.topics.iter().map(|(t, s)| format!("{t} {}/{} pending", s.length, s.pending)).collect();
        println!("6. streams trimmed ...... {}: length/pending {}", verdict("6"), lens.join(", "));
        let changed = if self.outcomes_changed_by_agent_kills > 0 {
            format!(
                ": {} outcomes changed by an agent kill cutting an exchange short",
                self.outcomes_changed_by_agent_kills
            )
        } else {
            String::new()
        };
        println!("7. outcome as steered ... {}{changed}", verdict("7"));
    }

    /// Checks 9 and 10, then the outcomes by kind.
    pub fn print_checks_from_9(&self) {
        let verdict = |n: &str| self.verdict(n);
        let c = &self.circuit;
        let m = &self.node_metrics;
        println!(
            "9. unreachable agent spends no attempt ... {}: {} requeues for an unreachable agent in {} tasks; {} tasks failed only because their agent was down, {} of them succeeded on attempt 1; nodes' /metrics: unavailable {}, circuit opened {}, tasks that waited for an open circuit {}",
            verdict("9"),
            c.unavailable_outcomes,
            c.tasks_met_down_agent,
            c.tasks_met_only_down_agent,
            c.tasks_met_only_down_agent_succeeded_first,
            m.unavailable(),
            m.circuit_opened(),
            m.circuit_waits()
        );
        if self.settlement_checked {
            println!("10. money settles ...... {}", verdict("10"));
        } else {
            println!("10. money settles ...... not checked (needs the ledger's task-bound reservations; see check/settlement.rs)");
        }
        self.print_workflow_checks();
        println!("== by kind (published / succeeded / dead)");
        for (k, s) in &self.by_kind {
            println!("   {k:<18} {:>6} / {:>6} / {:>6}", s.published, s.succeeded, s.dead);
        }
        if self.final_tasks_without_start_report > 0 {
            println!(
                "   note: {} final tasks have no start report (a report lost to a kill, or a task that never ran)",
                self.final_tasks_without_start_report
            );
        }
    }
}
