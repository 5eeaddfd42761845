//! Ledger key names, all in the `{pay}` hash slot.

pub fn mandate(id: &str) -> String {
    format!("genesis:{{pay}}:mandate:{id}")
}
pub fn agent_window(agent: &str) -> String {
    format!("genesis:{{pay}}:win:agent:{agent}")
}
pub fn near_window(business: &str, vendor: &str) -> String {
    format!("genesis:{{pay}}:win:near:{business}|{vendor}")
}
pub fn approved_amounts(agent: &str, vendor: &str) -> String {
    format!("genesis:{{pay}}:amounts:{agent}|{vendor}")
}
pub fn used_agent(agent: &str, day: &str) -> String {
    format!("genesis:{{pay}}:used:agent:{agent}:{day}")
}
pub fn used_business(business: &str) -> String {
    format!("genesis:{{pay}}:used:business:{business}")
}
pub fn used_tenant(tenant: &str, day: &str) -> String {
    format!("genesis:{{pay}}:used:tenant:{tenant}:{day}")
}
pub const RESERVATIONS: &str = "genesis:{pay}:reservations";
pub const REVIEWS: &str = "genesis:{pay}:reviews";
pub const LOG: &str = "genesis:{pay}:log";
pub const BUSINESSES: &str = "genesis:{pay}:index:businesses";
pub const TENANTS: &str = "genesis:{pay}:index:tenants";
pub fn business_stats(business: &str) -> String {
    format!("genesis:{{pay}}:stats:business:{business}")
}
pub fn revenue(business: &str) -> String {
    format!("genesis:{{pay}}:revenue:{business}")
}
