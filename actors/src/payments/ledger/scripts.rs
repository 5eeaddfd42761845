//! The ledger's Lua scripts. Each money operation is one script, so any number of nodes sharing one
//! Redis see one serial order of decisions: no two can both take the last cents of a budget, and a
//! mandate is decided once. A script touches only the keys it is given, and every one of them is in
//! the shard of one tenant ([`decide_keys`], [`settle_keys`], [`review_keys`]): one hash slot per
//! script, Cluster-safe; different tenants' decisions run on whichever shards hold their slots.
//!
//! The scripts are `lua/*.lua`; their arguments are [`DecideArgs`], [`SettleArgs`] and [`ReviewArgs`]
//! (see [`crate::connection::script`]). `decide.lua` mirrors `policy::evaluate` step by step; the
//! stateless verdicts (suspicious pattern, whitelist) are computed in Rust and passed in, the stateful
//! ones (idempotency, velocity, structuring, anomaly, budgets) are computed there. `tests/payments.rs`
//! runs one table of scenarios against this and the in-memory ledger to keep the two identical.

use super::keys::Shard;
use super::DecideInput;
use crate::connection::script::{LuaScript, ScriptArgs, Sink};
use crate::payments::policy::{self, Limits};
use crate::payments::types::{Decision, ValidIntent, WorkflowBudget};

/// The KEYS of `decide.lua` for an intent (`day`: the UTC day of the decision), all in its tenant's shard.
pub fn decide_keys(i: &ValidIntent, day: &str) -> [String; 15] {
    let s = Shard::of(&i.tenant_id);
    let (agent, vendor, business) = (i.agent_id.as_str(), i.vendor.as_str(), i.business_id.as_str());
    let [ua, ub, ut] = s.budgets(agent, business, day);
    [
        s.mandate(i.mandate.as_str()),
        s.agent_window(agent),
        s.near_window(business, vendor),
        s.approved_amounts(agent, vendor),
        ua,
        ub,
        ut,
        s.reservations(),
        s.reviews(),
        s.log(),
        s.business_stats(business),
        s.businesses(),
        s.task(&task_key(i.task_id.as_ref())),
        s.open_tasks(),
        s.used_workflow(workflow_key(i.workflow.as_ref())),
    ]
}

/// The workflow id as the scripts get it: `''` for an intent without a workflow budget (the scripts
/// then leave the workflow's usage alone, and the key they were given for it is never touched).
fn workflow_key(w: Option<&WorkflowBudget>) -> &str {
    w.map(|w| w.id.as_str()).unwrap_or_default()
}

/// The task id as the scripts get it: `''` for an intent without a task (the scripts then leave the
/// task index alone, and the key they were given for it, `…:task:`, is never touched).
fn task_key(task: Option<&crate::task::TaskId>) -> String {
    task.map(ToString::to_string).unwrap_or_default()
}

/// Where a stored mandate's money is counted besides its decision's budgets: its task (`""`: none) and
/// its workflow (`""`: none), as the mandate records them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owners<'a> {
    pub task: &'a str,
    pub workflow: &'a str,
}

/// The KEYS of `settle.lua` for mandate `id` stored in `shard` with decision `d` of UTC day `day`.
pub fn settle_keys(shard: &Shard, id: &str, d: &Decision, day: &str, of: Owners<'_>) -> [String; 10] {
    let [ua, ub, ut] = shard.budgets(&d.agent_id, &d.business_id, day);
    let (ex, log, sb) = (shard.reservations(), shard.log(), shard.business_stats(&d.business_id));
    let (tk, ts, uw) = (shard.task(of.task), shard.open_tasks(), shard.used_workflow(of.workflow));
    [shard.mandate(id), ua, ub, ut, ex, log, sb, tk, ts, uw]
}

/// The KEYS of `review.lua` for mandate `id` stored in `shard` with decision `d`; `day` is the UTC day
/// of the review, whose budgets an approval is checked against and charged to.
pub fn review_keys(shard: &Shard, id: &str, d: &Decision, day: &str, of: Owners<'_>) -> [String; 11] {
    let [ua, ub, ut] = shard.budgets(&d.agent_id, &d.business_id, day);
    let (ex, rv, log, sb) = (shard.reservations(), shard.reviews(), shard.log(), shard.business_stats(&d.business_id));
    let (tk, ts, uw) = (shard.task(of.task), shard.open_tasks(), shard.used_workflow(of.workflow));
    [shard.mandate(id), ua, ub, ut, ex, rv, log, sb, tk, ts, uw]
}

/// `decide.lua`: the stateful checks and the reservation of one intent. `pattern` and `whitelist` are
/// the stateless verdicts (code and reason, empty when the check passed), computed in Rust.
pub struct DecideArgs<'a> {
    pub input: &'a DecideInput<'a>,
    /// The UTC day of the decision.
    pub day: &'a str,
    pub pattern: (&'a str, &'a str),
    pub whitelist: (&'a str, &'a str),
}

impl ScriptArgs for DecideArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let x = self.input;
        let (i, r) = (x.intent, x.rules);
        let f = &r.fraud;
        for k in decide_keys(i, self.day) {
            to.key(k);
        }
        to.arg(x.now_ms).arg(policy::fingerprint(i)).arg(i.amount.get()).arg(i.mandate.as_str());
        to.arg(&i.agent_id).arg(i.vendor.as_str()).arg(&i.business_id).arg(i.tenant_id.as_str()).arg(&i.reason);
        to.arg(self.day).arg(self.pattern.0).arg(self.pattern.1).arg(self.whitelist.0).arg(self.whitelist.1);
        to.arg(f.velocity_window_ms).arg(f.velocity_max_count).arg(f.velocity_max_sum_cents);
        to.arg(f.structuring_window_ms).arg(policy::near_threshold_floor(r)).arg(r.auto_approve_cents);
        to.arg(f.structuring_min_count).arg(policy::hundredths(f.anomaly_factor)).arg(f.anomaly_min_samples);
        to.arg(f.anomaly_history.max(1)).arg(r.review_above_cents);
        to.arg(x.limits.agent_daily_cents).arg(x.limits.business_total_cents).arg(x.limits.tenant_daily_cents);
        to.arg(x.reservation_ttl_ms).arg(x.retention_ms);
        to.arg(task_key(i.task_id.as_ref())).arg(x.check_task_after_ms);
        to.arg(workflow_key(i.workflow.as_ref())).arg(i.workflow.as_ref().map_or(0, |w| w.budget_cents));
    }
}

/// `settle.lua`: capture, release or expire the reservation of mandate `id`.
pub struct SettleArgs<'a> {
    pub shard: &'a Shard,
    pub id: &'a str,
    pub decision: &'a Decision,
    /// The UTC day of the decision's budgets.
    pub day: &'a str,
    pub of: Owners<'a>,
    pub now_ms: u64,
    pub to: &'a str,
    pub retention_ms: u64,
}

impl ScriptArgs for SettleArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        for k in settle_keys(self.shard, self.id, self.decision, self.day, self.of) {
            to.key(k);
        }
        to.arg(self.now_ms).arg(self.to).arg(self.retention_ms);
    }
}

/// `review.lua`: approve or deny the held intent of mandate `id`.
pub struct ReviewArgs<'a> {
    pub shard: &'a Shard,
    pub id: &'a str,
    pub decision: &'a Decision,
    /// The UTC day of the review: an approval is checked against and charged to its budgets.
    pub day: &'a str,
    pub of: Owners<'a>,
    pub now_ms: u64,
    pub approve: bool,
    pub limits: Limits,
    pub reservation_ttl_ms: u64,
    pub retention_ms: u64,
    pub check_task_after_ms: u64,
}

impl ScriptArgs for ReviewArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        for k in review_keys(self.shard, self.id, self.decision, self.day, self.of) {
            to.key(k);
        }
        to.arg(self.now_ms).arg(if self.approve { "1" } else { "0" });
        to.arg(self.limits.agent_daily_cents).arg(self.limits.business_total_cents);
        to.arg(self.limits.tenant_daily_cents).arg(self.reservation_ttl_ms).arg(self.retention_ms);
        to.arg(self.day).arg(self.check_task_after_ms);
    }
}

pub struct LedgerScripts {
    pub decide: LuaScript,
    pub settle: LuaScript,
    pub review: LuaScript,
}

impl LedgerScripts {
    pub fn load() -> Self {
        LedgerScripts {
            decide: LuaScript::new("decide", &[include_str!("lua/decide.lua")]),
            settle: LuaScript::new("settle", &[include_str!("lua/settle.lua")]),
            review: LuaScript::new("review", &[include_str!("lua/review.lua")]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::ledger::keys::hash_tag;
    use crate::payments::policy::{self, PaymentRules};
    use crate::payments::types::{Outcome, PaymentIntent};
    use crate::payments::vendor::Whitelist;
    use crate::tenant::TenantId;

    /// CRC16/XMODEM mod 16384: Redis Cluster's `CLUSTER KEYSLOT`.
    fn slot(key: &str) -> u16 {
        let crc = hash_tag(key).bytes().fold(0u16, |mut crc, b| {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
            crc
        });
        crc % 16384
    }

    fn intent(tenant: &str) -> ValidIntent {
        let raw = PaymentIntent {
            agent_id: "agent-a".into(),
            vendor: "openai.com".into(),
            amount_cents: 500,
            reason: String::new(),
            mandate_id: format!("m-{tenant}"),
            business_id: format!("biz-{tenant}"),
            tenant_id: TenantId::parse(tenant).expect("tenant"),
            task_id: None,
            workflow: Some(WorkflowBudget { id: format!("wf-{tenant}"), budget_cents: 1000 }),
        };
        let rules = PaymentRules { known_agents: ["agent-a".to_string()].into(), ..PaymentRules::default() };
        let whitelist = Whitelist::new(&["openai.com".to_string()]).expect("whitelist");
        policy::validate(&raw, &rules, &whitelist).expect("valid")
    }

    /// Every key of every script of one decision, settlement and review.
    fn script_keys(tenant: &str) -> Vec<Vec<String>> {
        let i = intent(tenant);
        let d = policy::decision(&i, &policy::Step::Approve, 0);
        assert_eq!(d.outcome, Outcome::Approved);
        let shard = Shard::of(&i.tenant_id);
        let id = i.mandate.as_str();
        let of = Owners { task: "01JTASK", workflow: "wf-1" };
        vec![
            decide_keys(&i, "2024-02-29").to_vec(),
            settle_keys(&shard, id, &d, "2024-02-29", of).to_vec(),
            review_keys(&shard, id, &d, "2024-02-29", of).to_vec(),
        ]
    }

    #[test]
    fn slot_matches_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!((slot("foo"), slot("123456789"), slot("{user1000}.following")), (12182, 12739, 3443));
    }

    #[test]
    fn each_script_stays_in_its_tenants_slot_and_tenants_spread() {
        let mut slots = Vec::new();
        for tenant in ["tenant-1", "tenant-2"] {
            let tag = format!("pay:{tenant}");
            for keys in script_keys(tenant) {
                for k in &keys {
                    assert_eq!(hash_tag(k), tag, "{k} is outside the shard of {tenant}");
                }
                let mut s: Vec<u16> = keys.iter().map(|k| slot(k)).collect();
                s.dedup();
                assert_eq!(s.len(), 1, "one slot per script: {keys:?}");
                slots.push(s[0]);
            }
        }
        assert_eq!(&slots[..3], &[slots[0]; 3]);
        assert_eq!(&slots[3..], &[slots[3]; 3]);
        assert_ne!(slots[0], slots[3], "two tenants, two slots");
    }

    #[test]
    fn every_struct_pushes_what_its_script_declares() {
        use crate::connection::script::{declared_pair, pushed};
        let i = intent("tenant-1");
        let d = policy::decision(&i, &policy::Step::Approve, 0);
        let (rules, whitelist) = (PaymentRules::default(), Whitelist::new(&["openai.com".to_string()]).expect("wl"));
        let limits = Limits { agent_daily_cents: 1, business_total_cents: 1, tenant_daily_cents: 1 };
        let input = DecideInput {
            intent: &i,
            rules: &rules,
            whitelist: &whitelist,
            limits,
            now_ms: 0,
            reservation_ttl_ms: 1,
            retention_ms: 1,
            check_task_after_ms: 1,
        };
        let s = LedgerScripts::load();
        let shard = Shard::of(&TenantId::parse("tenant-1").expect("tenant"));
        let decide = DecideArgs { input: &input, day: "2024-02-29", pattern: ("", ""), whitelist: ("", "") };
        assert_eq!(pushed(&decide), declared_pair(&s.decide, "NKEYS", "NARGV"));
        let (id, day) = (i.mandate.as_str(), "2024-02-29");
        let settle = SettleArgs {
            shard: &shard,
            id,
            decision: &d,
            day,
            of: Owners::default(),
            now_ms: 0,
            to: "captured",
            retention_ms: 1,
        };
        assert_eq!(pushed(&settle), declared_pair(&s.settle, "NKEYS", "NARGV"));
        let review = ReviewArgs {
            shard: &shard,
            id,
            decision: &d,
            day,
            of: Owners::default(),
            now_ms: 0,
            approve: true,
            limits,
            reservation_ttl_ms: 1,
            retention_ms: 1,
            check_task_after_ms: 1,
        };
        assert_eq!(pushed(&review), declared_pair(&s.review, "NKEYS", "NARGV"));
    }
}
