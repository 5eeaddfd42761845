//! `[payments]` of `genesis.toml`: thresholds, whitelist, budgets, fraud rules, webhooks, and the key of
//! task-bound payment tokens ([`token_key`]).

use super::checks::{duration, int, quote};
use super::issues::Issues;
use genesis_actors::payments::notify::NotifySettings;
use genesis_actors::payments::policy::{FraudRules, PaymentRules};
use genesis_actors::payments::vendor::Whitelist;
use genesis_actors::payments::{Budgets, PaymentsSettings};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const MAX_CENTS: i64 = 1 << 50;

/// The vendors agents may pay out of the box.
pub const DEFAULT_WHITELIST: &[&str] =
    &["openai.com", "anthropic.com", "stripe.com", "vercel.com", "namecheap.com", "cloudflare.com"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PaymentsFile {
    pub hard_cap_cents: Option<i64>,
    pub auto_approve_cents: Option<i64>,
    pub review_above_cents: Option<i64>,
    pub vendor_whitelist: Option<Vec<String>>,
    pub suspicious_patterns: Option<Vec<String>>,
    pub reservation_ttl: Option<String>,
    pub retention: Option<String>,
    pub expiry_interval: Option<String>,
    pub reconcile_interval: Option<String>,
    /// Relative to `genesis.toml`'s directory; read by [`token_key`].
    pub token_key_file: Option<String>,
    #[serde(default)]
    pub budgets: BudgetsFile,
    #[serde(default)]
    pub fraud: FraudFile,
    #[serde(default)]
    pub notify: NotifyFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BudgetsFile {
    pub agent_daily_cents: Option<i64>,
    pub business_total_cents: Option<i64>,
    pub tenant_daily_cents: Option<i64>,
    #[serde(default)]
    pub agent_daily: BTreeMap<String, i64>,
    #[serde(default)]
    pub business_total: BTreeMap<String, i64>,
    #[serde(default)]
    pub tenant_daily: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FraudFile {
    pub velocity_window: Option<String>,
    pub velocity_max_count: Option<i64>,
    pub velocity_max_sum_cents: Option<i64>,
    pub structuring_window: Option<String>,
    pub structuring_near_ratio: Option<f64>,
    pub structuring_min_count: Option<i64>,
    pub anomaly_factor: Option<f64>,
    pub anomaly_min_samples: Option<i64>,
    pub anomaly_history: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotifyFile {
    pub dashboard_webhook: Option<String>,
    pub alerts_webhook: Option<String>,
    pub dashboard_url: Option<String>,
    pub attempts: Option<i64>,
}

fn cents(issues: &mut Issues, key: &str, raw: Option<i64>, default: u64) -> u64 {
    int(issues, key, raw, default, 1..=MAX_CENTS)
}

/// A webhook URL: its path is its credential, so it is held as a secret and shown redacted.
fn url(issues: &mut Issues, key: &str, raw: Option<String>) -> Option<genesis_actors::secret::SecretText> {
    let raw = raw.filter(|s| !s.trim().is_empty())?;
    match super::checks::http_url(&raw) {
        Ok(_) => Some(genesis_actors::secret::SecretText::new(raw)),
        Err(problem) => {
            let shown = genesis_actors::secret::redact_url(&raw);
            issues.push(key, Some(quote(&shown)), format!("{problem} (or be empty to disable)"));
            None
        }
    }
}

fn overrides(issues: &mut Issues, key: &str, map: BTreeMap<String, i64>) -> BTreeMap<String, u64> {
    map.into_iter()
        .map(|(name, v)| (name.clone(), cents(issues, &format!("{key}.{}", quote(&name)), Some(v), 0)))
        .collect()
}

/// Validate `[payments]`. Agent names are checked against the roster later ([`check_agents`]).
pub(crate) fn payments(file: PaymentsFile, issues: &mut Issues) -> PaymentsSettings {
    let d = PaymentRules::default();
    let hard_cap = cents(issues, "payments.hard_cap_cents", file.hard_cap_cents, d.hard_cap_cents);
    let auto = cents(issues, "payments.auto_approve_cents", file.auto_approve_cents, d.auto_approve_cents);
    let review = cents(issues, "payments.review_above_cents", file.review_above_cents, d.review_above_cents);
    if auto > review {
        issues.push(
            "payments.auto_approve_cents",
            Some(auto.to_string()),
            format!("must not exceed payments.review_above_cents ({review})"),
        );
    }
    if review > hard_cap {
        issues.push(
            "payments.review_above_cents",
            Some(review.to_string()),
            format!("must not exceed payments.hard_cap_cents ({hard_cap})"),
        );
    }
    let entries = file.vendor_whitelist.unwrap_or_else(|| DEFAULT_WHITELIST.iter().map(|s| s.to_string()).collect());
    let whitelist = match Whitelist::new(&entries) {
        Ok(w) => w,
        Err(problem) => {
            issues.push("payments.vendor_whitelist", Some(format!("{entries:?}")), problem);
            Whitelist::default()
        }
    };
    let suspicious_patterns: Vec<String> = file
        .suspicious_patterns
        .unwrap_or_else(|| {
            ["gift card", "giftcard", "crypto", "bitcoin", "wire transfer", "western union"].map(String::from).to_vec()
        })
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();

    let f = file.fraud;
    let fd = FraudRules::default();
    let ms = |d: Duration| d.as_millis() as u64;
    let ratio = f.structuring_near_ratio.unwrap_or(fd.structuring_near_ratio);
    if !(ratio > 0.0 && ratio < 1.0) {
        issues.push(
            "payments.fraud.structuring_near_ratio",
            Some(format!("{ratio:?}")),
            "must be between 0 and 1 (exclusive)",
        );
    }
    let factor = f.anomaly_factor.unwrap_or(fd.anomaly_factor);
    if !(factor.is_finite() && (1.0..=1.0e6).contains(&factor)) {
        issues.push(
            "payments.fraud.anomaly_factor",
            Some(format!("{factor:?}")),
            "must be a number between 1.0 and 1000000",
        );
    }
    let fraud = FraudRules {
        velocity_window_ms: ms(duration(
            issues,
            "payments.fraud.velocity_window",
            f.velocity_window.as_deref(),
            Duration::from_millis(fd.velocity_window_ms),
            true,
        )),
        velocity_max_count: int(
            issues,
            "payments.fraud.velocity_max_count",
            f.velocity_max_count,
            fd.velocity_max_count,
            1..=1_000_000,
        ),
        velocity_max_sum_cents: cents(
            issues,
            "payments.fraud.velocity_max_sum_cents",
            f.velocity_max_sum_cents,
            fd.velocity_max_sum_cents,
        ),
        structuring_window_ms: ms(duration(
            issues,
            "payments.fraud.structuring_window",
            f.structuring_window.as_deref(),
            Duration::from_millis(fd.structuring_window_ms),
            true,
        )),
        structuring_near_ratio: ratio,
        structuring_min_count: int(
            issues,
            "payments.fraud.structuring_min_count",
            f.structuring_min_count,
            fd.structuring_min_count,
            2..=1000,
        ),
        anomaly_factor: factor,
        anomaly_min_samples: int(
            issues,
            "payments.fraud.anomaly_min_samples",
            f.anomaly_min_samples,
            fd.anomaly_min_samples,
            1..=1000,
        ),
        anomaly_history: int(issues, "payments.fraud.anomaly_history", f.anomaly_history, fd.anomaly_history, 1..=1000),
    };

    let b = file.budgets;
    let bd = Budgets::default();
    let budgets = Budgets {
        agent_daily_cents: cents(
            issues,
            "payments.budgets.agent_daily_cents",
            b.agent_daily_cents,
            bd.agent_daily_cents,
        ),
        business_total_cents: cents(
            issues,
            "payments.budgets.business_total_cents",
            b.business_total_cents,
            bd.business_total_cents,
        ),
        tenant_daily_cents: cents(
            issues,
            "payments.budgets.tenant_daily_cents",
            b.tenant_daily_cents,
            bd.tenant_daily_cents,
        ),
        per_agent_daily: overrides(issues, "payments.budgets.agent_daily", b.agent_daily),
        per_business_total: overrides(issues, "payments.budgets.business_total", b.business_total),
        per_tenant_daily: overrides(issues, "payments.budgets.tenant_daily", b.tenant_daily),
    };

    let n = file.notify;
    let nd = NotifySettings::default();
    let notify = NotifySettings {
        dashboard_webhook: url(issues, "payments.notify.dashboard_webhook", n.dashboard_webhook),
        alerts_webhook: url(issues, "payments.notify.alerts_webhook", n.alerts_webhook),
        dashboard_url: n.dashboard_url.filter(|s| !s.trim().is_empty()),
        attempts: int(issues, "payments.notify.attempts", n.attempts, nd.attempts, 1..=100),
        ..nd
    };

    let settings = PaymentsSettings {
        rules: PaymentRules {
            hard_cap_cents: hard_cap,
            auto_approve_cents: auto,
            review_above_cents: review,
            fraud,
            known_agents: BTreeSet::new(),
            suspicious_patterns,
        },
        whitelist,
        budgets,
        reservation_ttl: duration(
            issues,
            "payments.reservation_ttl",
            file.reservation_ttl.as_deref(),
            Duration::from_secs(24 * 3600),
            true,
        ),
        retention: duration(
            issues,
            "payments.retention",
            file.retention.as_deref(),
            Duration::from_secs(90 * 24 * 3600),
            true,
        ),
        expiry_interval: duration(
            issues,
            "payments.expiry_interval",
            file.expiry_interval.as_deref(),
            Duration::from_secs(30),
            true,
        ),
        reconcile_interval: duration(
            issues,
            "payments.reconcile_interval",
            file.reconcile_interval.as_deref(),
            Duration::from_secs(60),
            true,
        ),
        // Read with the file's directory and the environment at hand, by `token_key`.
        token_key: None,
        notify,
    };
    let raw = Raw { reservation_ttl: file.reservation_ttl.as_deref(), retention: file.retention.as_deref() };
    coherence(&settings, raw, issues);
    settings
}

/// The durations as written, for messages.
struct Raw<'a> {
    reservation_ttl: Option<&'a str>,
    retention: Option<&'a str>,
}

/// Thresholds that are each valid alone but contradict each other. Each issue is reported under one
/// key and names the other, with both values and what would go wrong:
///
/// - a review threshold at or above a default budget (while reviews can happen at all, i.e. below the
///   hard cap): every held intent is above that budget, so no reviewer could ever approve one;
/// - a hard cap above a default budget: the cap lets through amounts that no budget could pay, so the
///   cap is not the real limit;
/// - a velocity sum below the hard cap: one intent the cap allows would be denied as fraud
///   (`velocity_sum`) on its own;
/// - a retention shorter than the reservation TTL: the mandate would be forgotten while its money is
///   still reserved, so the reservation could never be captured or released.
///
/// `auto_approve ≤ review_above ≤ hard_cap` is checked where the three are read. Per-name budget
/// overrides are not compared with the thresholds: a small budget for one agent, business or tenant
/// is a deliberate restriction of it, not a contradiction of the defaults.
fn coherence(p: &PaymentsSettings, raw: Raw<'_>, issues: &mut Issues) {
    let (r, b) = (&p.rules, &p.budgets);
    let budgets = [
        ("payments.budgets.agent_daily_cents", b.agent_daily_cents),
        ("payments.budgets.business_total_cents", b.business_total_cents),
        ("payments.budgets.tenant_daily_cents", b.tenant_daily_cents),
    ];
    for (key, budget) in budgets {
        if r.review_above_cents < r.hard_cap_cents && r.review_above_cents >= budget {
            issues.push(
                "payments.review_above_cents",
                Some(r.review_above_cents.to_string()),
                format!(
                    "must be below {key} ({budget}): every intent held for review is above that budget, so \
                     no review could approve it (or set it to payments.hard_cap_cents to hold nothing)"
                ),
            );
        }
        if r.hard_cap_cents > budget {
            issues.push(
                "payments.hard_cap_cents",
                Some(r.hard_cap_cents.to_string()),
                format!("must not exceed {key} ({budget}): the cap would let through amounts no budget can pay"),
            );
        }
    }
    if r.fraud.velocity_max_sum_cents < r.hard_cap_cents {
        issues.push(
            "payments.fraud.velocity_max_sum_cents",
            Some(r.fraud.velocity_max_sum_cents.to_string()),
            format!(
                "must not be below payments.hard_cap_cents ({}): a single intent the cap allows would be \
                 denied as velocity_sum fraud",
                r.hard_cap_cents
            ),
        );
    }
    if p.retention < p.reservation_ttl {
        let show = |raw: Option<&str>, d: Duration| {
            raw.map(quote).unwrap_or_else(|| quote(&humantime_serde::re::humantime::format_duration(d).to_string()))
        };
        issues.push(
            "payments.retention",
            Some(show(raw.retention, p.retention)),
            format!(
                "must not be shorter than payments.reservation_ttl ({}): a mandate would be forgotten while \
                 its money is still reserved, and the reservation could then never be captured or released",
                show(raw.reservation_ttl, p.reservation_ttl)
            ),
        );
    }
}

/// Tie the payment rules to the roster: only roster agents may ask for money, and per-agent budget
/// overrides must name roster agents.
pub(crate) fn check_agents(p: &mut PaymentsSettings, agents: BTreeSet<String>, issues: &mut Issues) {
    for name in p.budgets.per_agent_daily.keys() {
        if !agents.contains(name) {
            issues.push(format!("payments.budgets.agent_daily.{}", quote(name)), None, "no such agent in the roster");
        }
    }
    p.rules.known_agents = agents;
}

/// The environment variable that holds the payment token key; it wins over `payments.token_key_file`.
pub const TOKEN_KEY_ENV: &str = "GENESIS_PAYMENT_TOKEN_KEY";

/// The payment token key: the bytes of `GENESIS_PAYMENT_TOKEN_KEY` if it is set and not empty, else
/// the bytes of `payments.token_key_file` (relative to `dir`, read exactly: a trailing newline is part
/// of the key), else `None` (the node then makes a random key per process and says so). Each must hold
/// at least 32 bytes. Issues name the key, never its value.
pub(crate) fn token_key(
    dir: &std::path::Path,
    file: Option<&str>,
    env: super::expand::Env,
    issues: &mut Issues,
) -> Option<genesis_actors::payments::token::TokenKey> {
    use genesis_actors::payments::token::TokenKey;
    const FIX: &str = "generate one with `head -c 32 /dev/urandom > FILE` (the same on every node)";
    if let Some(v) = env(TOKEN_KEY_ENV).filter(|v| !v.is_empty()) {
        return match TokenKey::from_bytes(v.into_bytes()) {
            Ok(k) => Some(k),
            Err(e) => {
                issues.push(TOKEN_KEY_ENV, None, format!("{e} (e.g. `openssl rand -hex 32`)"));
                None
            }
        };
    }
    let file = file.map(str::trim).filter(|f| !f.is_empty())?;
    let path = dir.join(file);
    let key = "payments.token_key_file";
    match std::fs::read(&path) {
        Ok(bytes) => match TokenKey::from_bytes(bytes) {
            Ok(k) => Some(k),
            Err(e) => {
                issues.push(key, Some(quote(file)), format!("{e}; {FIX}"));
                None
            }
        },
        Err(e) => {
            issues.push(key, Some(quote(file)), format!("cannot read {} ({e}); {FIX}", path.display()));
            None
        }
    }
}
