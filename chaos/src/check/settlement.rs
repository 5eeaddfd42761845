//! Check 10, money settles with the task (DESIGN.md, "More invariants"): once every task is final,
//! no reservation of a succeeded task is left uncaptured, and none of a dead task is left reserved.
//!
//! The open reservations are read from the ledger itself: each task's index of reservations
//! (`Ledger::task_reservations`, which a settlement empties) and each listed mandate's record, so a
//! reservation counts as open only while its record still says `approved`.

use super::Violation;
use crate::record::PublishedTask;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::task::TaskId;
use genesis_actors::tenant::TenantId;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One reservation the ledger still holds open: approved, neither captured nor released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenReservation {
    pub mandate_id: String,
    pub amount_cents: u64,
}

/// The ledger's open reservations, by the task id they are bound to.
pub type OpenReservations = BTreeMap<String, Vec<OpenReservation>>;

/// Every task's reservations the ledger still holds open, by task id. `records` are the tasks' result
/// records (same order as `tasks`), which name each task's tenant.
pub async fn open_reservations(
    ledger: &RedisLedger,
    tasks: &[PublishedTask],
    records: &[HashMap<String, String>],
) -> anyhow::Result<OpenReservations> {
    let mut open = OpenReservations::new();
    for (t, rec) in tasks.iter().zip(records) {
        let Some(tenant) = rec.get("tenant_id").and_then(|s| TenantId::parse(s).ok()) else { continue };
        let Ok(task) = t.task_id.parse::<TaskId>() else { continue };
        let ids = ledger.task_reservations(&tenant, &task).await.map_err(|e| anyhow::anyhow!("ledger: {e}"))?;
        for id in ids {
            let m = ledger.mandate(&id).await.map_err(|e| anyhow::anyhow!("ledger: {e}"))?;
            if let Some(m) = m.filter(|m| m.status == "approved") {
                let amount_cents = m.decision.amount_cents;
                open.entry(t.task_id.clone()).or_default().push(OpenReservation { mandate_id: id, amount_cents });
            }
        }
    }
    Ok(open)
}

/// Check 10 for final tasks: `status` gives each task's final status by task id.
pub fn settlement(tasks: &[PublishedTask], status: &HashMap<&str, &str>, open: &OpenReservations) -> Vec<Violation> {
    let v = |detail: String| Violation { check: "10 money settles with the task".into(), detail };
    let mut out = Vec::new();
    for t in tasks {
        let Some(held) = open.get(&t.task_id).filter(|h| !h.is_empty()) else { continue };
        let cents: u64 = held.iter().map(|r| r.amount_cents).sum();
        let ids: Vec<&str> = held.iter().map(|r| r.mandate_id.as_str()).collect();
        match status.get(t.task_id.as_str()).copied() {
            Some("succeeded") => out.push(v(format!(
                "task {} ({}) succeeded, but {} reservation(s) of {cents} ¢ are still uncaptured: {ids:?}",
                t.task_id,
                t.topic,
                held.len()
            ))),
            Some("dead") => out.push(v(format!(
                "task {} ({}) is dead, but {} reservation(s) of {cents} ¢ are still reserved: {ids:?}",
                t.task_id,
                t.topic,
                held.len()
            ))),
            // Not final: check 1 reports the task; its money may still settle.
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Expect;

    fn task(id: &str) -> PublishedTask {
        PublishedTask {
            task_id: id.into(),
            topic: "genesis.build".into(),
            kind: "pay".into(),
            panic_deliveries: 0,
            max_retries: 2,
            expect: Expect::Succeeded,
            published_at_us: 0,
        }
    }

    #[test]
    fn an_open_reservation_of_a_final_task_is_reported() {
        let tasks = [task("ok"), task("dead"), task("settled"), task("running")];
        let status: HashMap<&str, &str> =
            [("ok", "succeeded"), ("dead", "dead"), ("settled", "succeeded"), ("running", "running")].into();
        let r = |m: &str| vec![OpenReservation { mandate_id: m.into(), amount_cents: 250 }];
        let open: OpenReservations =
            [("ok".to_string(), r("ok-p0")), ("dead".to_string(), r("dead-p0")), ("running".to_string(), r("r-p0"))]
                .into();
        let v = settlement(&tasks, &status, &open);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].detail.contains("uncaptured") && v[0].detail.contains("ok-p0"));
        assert!(v[1].detail.contains("still reserved") && v[1].detail.contains("dead-p0"));
        assert!(settlement(&tasks, &status, &OpenReservations::new()).is_empty());
    }
}
