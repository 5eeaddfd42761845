//! Ledger key names. **Tenant = shard**: every key a money script touches is in its tenant's hash slot,
//! `genesis:{pay:<tenant>}:…` ([`Shard`]), so no script spans two slots and Redis Cluster can spread
//! tenants over its shards. An agent's and a business's spend therefore belong to one tenant: the agent
//! budget is per (tenant, agent, day), and a business is bound to one tenant ([`business_tenant`]).
//!
//! The few keys that must be found without knowing the tenant are global single keys (no hash tag, so
//! they spread over the slots too), written and read by single-key commands outside the scripts:
//! [`TENANTS`], [`business_tenant`], [`mandate_tenant`] and [`revenue`].
//!
//! This is the only file that writes a hash tag. A shard is built from a [`TenantId`] only, and a
//! tenant id never contains the `{` or `}` that would move the tag (the type forbids them).

use crate::tenant::TenantId;

/// The keys of one tenant's shard: all in the hash slot of `pay:<tenant>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// `genesis:{pay:<tenant>}:`
    prefix: String,
}

impl Shard {
    pub fn of(tenant: &TenantId) -> Self {
        Shard { prefix: format!("genesis:{{pay:{tenant}}}:") }
    }

    /// `genesis:{pay:<tenant>}:`, the start of every key of the shard (for offline tools that list keys).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}{rest}", self.prefix)
    }

    pub fn mandate(&self, id: &str) -> String {
        self.key(format_args!("mandate:{id}"))
    }
    /// Velocity window of an agent in this tenant.
    pub fn agent_window(&self, agent: &str) -> String {
        self.key(format_args!("win:agent:{agent}"))
    }
    pub fn near_window(&self, business: &str, vendor: &str) -> String {
        self.key(format_args!("win:near:{business}|{vendor}"))
    }
    /// Recent approved amounts of an agent (in this tenant) to a vendor, for the anomaly check.
    pub fn approved_amounts(&self, agent: &str, vendor: &str) -> String {
        self.key(format_args!("amounts:{agent}|{vendor}"))
    }
    /// Usage of an agent's daily budget in this tenant.
    pub fn used_agent(&self, agent: &str, day: &str) -> String {
        self.key(format_args!("used:agent:{agent}:{day}"))
    }
    pub fn used_business(&self, business: &str) -> String {
        self.key(format_args!("used:business:{business}"))
    }
    /// Usage of this tenant's daily budget.
    pub fn used_tenant(&self, day: &str) -> String {
        self.key(format_args!("used:tenant:{day}"))
    }
    /// Usage of a workflow's budget (its tasks are in this tenant). Kept for the retention after its
    /// last movement ([`super::workflow_usage_ttl_ms`]).
    pub fn used_workflow(&self, workflow: &str) -> String {
        self.key(format_args!("used:workflow:{workflow}"))
    }
    /// The three budgets a reservation counts against, in the order they are checked: agent/day,
    /// business, tenant/day.
    pub fn budgets(&self, agent: &str, business: &str, day: &str) -> [String; 3] {
        [self.used_agent(agent, day), self.used_business(business), self.used_tenant(day)]
    }
    /// Approved reservations by deadline (zset).
    pub fn reservations(&self) -> String {
        self.key(format_args!("reservations"))
    }
    /// The open (approved, unsettled) reservations of one task (set of mandate ids): what settling the
    /// task moves. Expires with the last reservation added to it.
    pub fn task(&self, task_id: &str) -> String {
        self.key(format_args!("task:{task_id}"))
    }
    /// The tasks of this tenant holding open reservations, by when the reconciler should next look at
    /// their status (zset: task id → ms). A task leaves when its last reservation is settled.
    pub fn open_tasks(&self) -> String {
        self.key(format_args!("tasks:open"))
    }
    /// Intents held for review by time held (zset).
    pub fn reviews(&self) -> String {
        self.key(format_args!("reviews"))
    }
    /// The decision log (stream).
    pub fn log(&self) -> String {
        self.key(format_args!("log"))
    }
    /// The businesses of this tenant that asked for money (zset: business → ms of its last decision),
    /// pruned of businesses idle for the retention by each decision, and expiring with the tenant's
    /// last decision (DECIDE). Only `budget show` reads it.
    pub fn businesses(&self) -> String {
        self.key(format_args!("index:businesses:active"))
    }
    /// The set the businesses index was before it had a lifetime; read once, by
    /// [`super::index::adopt_legacy`], then deleted.
    pub fn legacy_businesses(&self) -> String {
        self.key(format_args!("index:businesses"))
    }
    pub fn business_stats(&self, business: &str) -> String {
        self.key(format_args!("stats:business:{business}"))
    }
}

/// Every tenant that asked for money in the last `retention` (zset: tenant → ms of its last decision
/// or review approval, or of its last reservation's deadline if later): what cross-tenant reads
/// iterate (no SCAN: Redis Cluster does not guarantee one across slots). Each decision removes the
/// tenants idle for longer than the retention, whose mandates, log entries and held reviews have
/// expired by then, and whose reservations were due a retention ago.
pub const TENANTS: &str = "genesis:pay:tenants:active";

/// The plain set of tenants of earlier versions (no lifetime); adopted into [`TENANTS`] and deleted
/// when a ledger opens ([`super::index::adopt_legacy`]).
pub const LEGACY_TENANTS: &str = "genesis:pay:tenants";

/// The tenant a business is bound to (string, no expiry): set once, by the business's first decision.
pub fn business_tenant(business: &str) -> String {
    format!("genesis:pay:business-tenant:{business}")
}

/// The tenant whose shard holds a mandate (string, expires with the mandate: after the retention, but
/// not while the mandate holds a reservation).
pub fn mandate_tenant(id: &str) -> String {
    format!("genesis:pay:mandate-tenant:{id}")
}

/// A business's projected revenue (string). Read beside the business's stats, never by a script.
pub fn revenue(business: &str) -> String {
    format!("genesis:pay:revenue:{business}")
}

/// What Redis Cluster hashes for `key`: the text between the first `{` and the next `}` if that is
/// not empty, else the whole key.
pub fn hash_tag(key: &str) -> &str {
    key.find('{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.find('}').filter(|close| *close > 0).map(|close| &rest[..close])
        })
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_keys_carry_the_tenant_tag_and_global_keys_none() {
        let s = Shard::of(&TenantId::parse("tenant-1").expect("tenant"));
        let keys = [s.mandate("m"), s.used_agent("a", "2024-02-29"), s.used_tenant("2024-02-29"), s.used_workflow("w")];
        for k in keys.into_iter().chain([s.log(), s.task("t")]) {
            assert_eq!(hash_tag(&k), "pay:tenant-1", "{k}");
        }
        for k in
            [TENANTS.to_string(), LEGACY_TENANTS.to_string(), business_tenant("b"), mandate_tenant("m"), revenue("b")]
        {
            assert_eq!(hash_tag(&k), k, "{k} must not be tagged");
        }
        assert_eq!(hash_tag("a{}b{c}"), "a{}b{c}");
        assert_eq!(hash_tag("a{b}{c}"), "b");
    }
}
