use super::*;
use crate::payments::types::code;
use crate::tenant::TenantId;
use proptest::prelude::*;
use std::collections::HashMap;

const NOW: u64 = 1_709_164_800_000; // 2024-02-29T00:00:00Z

/// The table's thresholds, pinned (not the shipped defaults): cap $10,000, review above $500.
fn rules() -> PaymentRules {
    PaymentRules {
        hard_cap_cents: 1_000_000,
        review_above_cents: 50_000,
        known_agents: ["agent-a", "agent-b", "agent-c"].map(String::from).into(),
        suspicious_patterns: vec!["ignore previous".into(), "gift card".into(), "evil".into()],
        ..PaymentRules::default()
    }
}

fn whitelist() -> Whitelist {
    let hosts = ["openai.com", "anthropic.com", "stripe.com", "vercel.com", "namecheap.com", "cloudflare.com"];
    Whitelist::new(&hosts.map(String::from)).unwrap()
}

const LIMITS: Limits =
    Limits { agent_daily_cents: 100_000, business_total_cents: 500_000, tenant_daily_cents: 300_000 };

fn raw(agent: &str, vendor: &str, amount: i64, mandate: &str) -> PaymentIntent {
    PaymentIntent {
        agent_id: agent.into(),
        vendor: vendor.into(),
        amount_cents: amount,
        reason: "monthly API credits".into(),
        mandate_id: mandate.into(),
        business_id: "biz-1".into(),
        tenant_id: TenantId::parse("tenant-1").unwrap(),
        task_id: None,
        workflow: None,
    }
}

fn intent(vendor: &str, amount: i64) -> ValidIntent {
    validate(&raw("agent-a", vendor, amount, "m-1"), &rules(), &whitelist()).unwrap()
}

fn outcome(step: &Step) -> &'static str {
    match step {
        Step::Stored(_) => "stored",
        Step::Deny(r) | Step::NeedsReview(r) => r.code,
        Step::Approve => code::APPROVED,
    }
}

fn eval_with(i: &ValidIntent, view: &LedgerView) -> &'static str {
    outcome(&evaluate(i, &rules(), &whitelist(), &LIMITS, view, NOW))
}

#[test]
fn validation_table() {
    let with = |f: fn(&mut PaymentIntent)| {
        let mut r = raw("agent-a", "https://API.OpenAI.com:443/v1?x", 500, "m-1");
        f(&mut r);
        validate(&r, &rules(), &whitelist()).map(|i| i.vendor.as_str().to_owned()).map_err(|r| r.code)
    };
    assert_eq!(with(|_| ()), Ok("api.openai.com".into()));
    assert_eq!(with(|r| r.reason = "é".repeat(1000)), Ok("api.openai.com".into()));
    type Edit = fn(&mut PaymentIntent);
    let table: [(Edit, &str); 13] = [
        (|r| r.amount_cents = 0, code::INVALID_AMOUNT),
        (|r| r.amount_cents = -1, code::INVALID_AMOUNT),
        (|r| (r.amount_cents, r.vendor) = (0, "bad host".into()), code::INVALID_AMOUNT),
        (|r| r.amount_cents = 1_000_001, code::OVER_HARD_CAP),
        (|r| r.vendor = "not a host".into(), code::INVALID_VENDOR),
        (|r| r.vendor = "оpenai.com".into(), code::VENDOR_LOOKALIKE),
        (|r| (r.vendor, r.mandate_id) = ("1.2.3.4".into(), String::new()), code::INVALID_VENDOR),
        (|r| r.mandate_id = "m 1".into(), code::INVALID_MANDATE),
        (|r| r.business_id = "{biz}".into(), code::INVALID_BUSINESS),
        (|r| r.workflow = Some(WorkflowBudget { id: "wf 1".into(), budget_cents: 10 }), code::INVALID_WORKFLOW),
        (
            |r| {
                (r.business_id, r.workflow) =
                    ("{b}".into(), Some(WorkflowBudget { id: String::new(), budget_cents: 1 }))
            },
            code::INVALID_BUSINESS,
        ),
        (|r| r.reason = "x".repeat(1001), code::INVALID_REASON),
        (|r| r.agent_id = "mallory".into(), code::UNKNOWN_AGENT),
    ];
    for (n, (f, want)) in table.into_iter().enumerate() {
        assert_eq!(with(f), Err(want), "case {n}");
    }
    // A budget above what the Redis scripts compute exactly is taken as the largest exact one.
    let huge = PaymentIntent { workflow: Some(wf(u64::MAX)), ..raw("agent-a", "openai.com", 5, "m-1") };
    let v = validate(&huge, &rules(), &whitelist()).map(|i| i.workflow.map(|w| w.budget_cents));
    assert_eq!(v, Ok(Some(MAX_WORKFLOW_BUDGET_CENTS)));
}

fn wf(budget_cents: u64) -> WorkflowBudget {
    WorkflowBudget { id: "wf-1".into(), budget_cents }
}

/// An intent of workflow `wf-1` with this budget.
fn in_workflow(vendor: &str, amount: i64, budget_cents: u64) -> ValidIntent {
    let r = PaymentIntent { workflow: Some(wf(budget_cents)), ..raw("agent-a", vendor, amount, "m-1") };
    validate(&r, &rules(), &whitelist()).unwrap()
}

#[test]
fn the_workflow_budget_is_checked_first_of_the_budgets_and_only_with_a_workflow() {
    let used = |n: u64| LedgerView { workflow_used: n, ..Default::default() };
    let eval = |i: &ValidIntent, v: &LedgerView| evaluate(i, &rules(), &whitelist(), &LIMITS, v, NOW);
    // 600 reserved or spent of 1000: 400 more fits, 401 does not.
    assert_eq!(eval_with(&in_workflow("openai.com", 400, 1000), &used(600)), code::APPROVED);
    let over = eval(&in_workflow("openai.com", 500, 1000), &used(600));
    let want = "workflow wf-1 has 600 of 1000 cents reserved or spent; 500 more is over its budget";
    assert_eq!(over, Step::Deny(Rejection::new(code::OVER_WORKFLOW_BUDGET, want)));
    // Without a workflow its usage is nothing to the decision (and a ledger reads none).
    assert_eq!(eval_with(&intent("openai.com", 500), &used(u64::MAX)), code::APPROVED);
    // A budget of 0 refuses everything; u64 sums do not wrap.
    assert_eq!(eval_with(&in_workflow("openai.com", 1, 0), &used(0)), code::OVER_WORKFLOW_BUDGET);
    assert_eq!(eval_with(&in_workflow("openai.com", 1, 1 << 53), &used(u64::MAX)), code::OVER_WORKFLOW_BUDGET);
    // Order: after review and every other check, before the agent, business and tenant budgets.
    let all_full = LedgerView {
        workflow_used: 1000,
        agent_day_used: 100_000,
        business_used: 500_000,
        tenant_day_used: 300_000,
        ..Default::default()
    };
    assert_eq!(eval_with(&in_workflow("openai.com", 5, 1000), &all_full), code::OVER_WORKFLOW_BUDGET);
    assert_eq!(eval_with(&in_workflow("openai.com", 60_000, 1000), &all_full), code::NEEDS_REVIEW);
    assert_eq!(eval_with(&in_workflow("example.com", 5, 1000), &all_full), code::VENDOR_NOT_WHITELISTED);
    let room = LedgerView { workflow_used: 0, ..all_full };
    assert_eq!(eval_with(&in_workflow("openai.com", 5, 1000), &room), code::OVER_AGENT_DAILY_BUDGET);
    assert_eq!(check_workflow_budget(5, None, u64::MAX), Ok(()));
}

#[test]
fn the_workflow_is_part_of_the_fingerprint_only_when_there_is_one() {
    let plain = intent("openai.com", 500);
    let a = in_workflow("openai.com", 500, 1000);
    assert_eq!(fingerprint(&plain), "agent-a|openai.com|500|biz-1|tenant-1", "unchanged without a workflow");
    assert_eq!(fingerprint(&a), "agent-a|openai.com|500|biz-1|tenant-1|wf:wf-1:1000");
    let task = crate::task::TaskId::generate();
    let with_task = ValidIntent { task_id: Some(task), ..a.clone() };
    assert_eq!(fingerprint(&with_task), format!("agent-a|openai.com|500|biz-1|tenant-1|task:{task}|wf:wf-1:1000"));
    // The same mandate under another budget (or another workflow, or none) is another payment.
    let d = decision(&a, &Step::Approve, NOW);
    let view = LedgerView {
        existing: Some(StoredMandate { fingerprint: fingerprint(&a), decision: d }),
        ..Default::default()
    };
    assert_eq!(eval_with(&a, &view), "stored");
    for other in [in_workflow("openai.com", 500, 1001), plain] {
        assert_eq!(eval_with(&other, &view), code::MANDATE_CONFLICT);
    }
}

type ViewFn = fn(&mut LedgerView, &ValidIntent);

fn stored(v: &mut LedgerView, i: &ValidIntent, fp: String) {
    v.existing = Some(StoredMandate { fingerprint: fp, decision: decision(i, &Step::Approve, NOW - 5) });
}

#[test]
fn evaluate_table() {
    const WL: &str = "openai.com";
    const EX: &str = "example.com";
    const SIX: [u64; 6] = [600, 100, 500, 200, 400, 300]; // median 350
    fn hist(v: &mut LedgerView, _: &ValidIntent) {
        v.approved_amounts_agent_vendor = [vec![100; 20], vec![90_000; 19]].concat();
        // only the newest 20 count
    }
    #[rustfmt::skip]
    let table: Vec<(&str, &str, i64, ViewFn, &str)> = vec![
        ("plain approve", WL, 999, |_, _| (), code::APPROVED),
        ("same fingerprint", WL, 999, |v, i| stored(v, i, fingerprint(i)), "stored"),
        ("other fingerprint", WL, 999, |v, i| stored(v, i, "x".into()), code::MANDATE_CONFLICT),
        ("pattern in vendor", "evil.io", 100, |_, _| (), code::SUSPICIOUS_PATTERN),
        ("velocity count", WL, 999, |v, _| v.agent_recent = vec![(NOW - 59_999, 1); 30], code::VELOCITY_COUNT),
        ("velocity count ok", WL, 999, |v, _| v.agent_recent = vec![(NOW, 1); 29], code::APPROVED),
        ("velocity window edge", WL, 999, |v, _| v.agent_recent = vec![(NOW - 60_000, 1); 30], code::APPROVED),
        ("velocity sum", WL, 999, |v, _| v.agent_recent = vec![(NOW, 99_002)], code::VELOCITY_SUM),
        ("velocity sum edge", WL, 999, |v, _| v.agent_recent = vec![(NOW, 99_001)], code::APPROVED),
        ("structuring", WL, 999, |v, _| v.near_threshold_recent = vec![(NOW - 3_599_999, 999); 2], code::STRUCTURING),
        ("structuring 800", WL, 800, |v, _| v.near_threshold_recent = vec![(NOW, 800); 2], code::STRUCTURING),
        ("not near 799", WL, 799, |v, _| v.near_threshold_recent = vec![(NOW, 999); 2], code::APPROVED),
        ("not near 1000", WL, 1000, |v, _| v.near_threshold_recent = vec![(NOW, 999); 2], code::APPROVED),
        ("structuring edge", WL, 999, |v, _| v.near_threshold_recent = vec![(NOW - 3_600_000, 999); 2], code::APPROVED),
        ("two near only", WL, 999, |v, _| v.near_threshold_recent = vec![(NOW, 999)], code::APPROVED),
        ("anomaly", WL, 1001, |v, _| v.approved_amounts_agent_vendor = vec![100; 5], code::AMOUNT_ANOMALY),
        ("anomaly edge", WL, 1000, |v, _| v.approved_amounts_agent_vendor = vec![100; 5], code::APPROVED),
        ("anomaly few samples", WL, 9000, |v, _| v.approved_amounts_agent_vendor = vec![100; 4], code::APPROVED),
        ("anomaly even", WL, 3501, |v, _| v.approved_amounts_agent_vendor = SIX.to_vec(), code::AMOUNT_ANOMALY),
        ("anomaly even edge", WL, 3500, |v, _| v.approved_amounts_agent_vendor = SIX.to_vec(), code::APPROVED),
        ("anomaly history", WL, 1001, hist, code::AMOUNT_ANOMALY),
        ("not whitelisted", EX, 500, |_, _| (), code::VENDOR_NOT_WHITELISTED),
        ("lookalike", "0penai.com", 500, |_, _| (), code::VENDOR_LOOKALIKE),
        ("review", WL, 50_001, |_, _| (), code::NEEDS_REVIEW),
        ("review edge", WL, 50_000, |_, _| (), code::APPROVED),
        ("agent budget", WL, 999, |v, _| v.agent_day_used = 99_002, code::OVER_AGENT_DAILY_BUDGET),
        ("agent budget edge", WL, 999, |v, _| v.agent_day_used = 99_001, code::APPROVED),
        ("business budget", WL, 999, |v, _| v.business_used = 499_002, code::OVER_BUSINESS_BUDGET),
        ("tenant budget", WL, 999, |v, _| v.tenant_day_used = 299_002, code::OVER_TENANT_DAILY_BUDGET),
        // Order of the checks.
        ("whitelist before budget", EX, 500, |v, _| v.agent_day_used = 100_000, code::VENDOR_NOT_WHITELISTED),
        ("whitelist before review", EX, 60_000, |_, _| (), code::VENDOR_NOT_WHITELISTED),
        ("small amount still checked", EX, 1, |_, _| (), code::VENDOR_NOT_WHITELISTED),
        ("fraud before whitelist", EX, 1, |v, _| v.agent_recent = vec![(NOW, 1); 30], code::VELOCITY_COUNT),
        ("pattern before velocity", "evil.io", 1, |v, _| v.agent_recent = vec![(NOW, 1); 30], code::SUSPICIOUS_PATTERN),
        ("count before sum", WL, 999, |v, _| v.agent_recent = vec![(NOW, 10_000); 30], code::VELOCITY_COUNT),
        ("velocity before structuring", WL, 999, |v, _| {
            v.agent_recent = vec![(NOW, 1); 30];
            v.near_threshold_recent = vec![(NOW, 999); 2];
        }, code::VELOCITY_COUNT),
        ("structuring before anomaly", WL, 999, |v, _| {
            v.near_threshold_recent = vec![(NOW, 999); 2];
            v.approved_amounts_agent_vendor = vec![1; 5];
        }, code::STRUCTURING),
        ("anomaly before wl", EX, 1001, |v, _| v.approved_amounts_agent_vendor = vec![1; 5], code::AMOUNT_ANOMALY),
        ("review before budget", WL, 60_000, |v, _| v.agent_day_used = 100_000, code::NEEDS_REVIEW),
        ("budget order agent", WL, 999, |v, _| {
            (v.agent_day_used, v.business_used, v.tenant_day_used) = (100_000, 500_000, 300_000);
        }, code::OVER_AGENT_DAILY_BUDGET),
        ("budget order business", WL, 999, |v, _| {
            (v.business_used, v.tenant_day_used) = (500_000, 300_000);
        }, code::OVER_BUSINESS_BUDGET),
        ("idempotency first", EX, 60_000, |v, i| {
            stored(v, i, fingerprint(i));
            (v.agent_recent, v.agent_day_used) = (vec![(NOW, 1); 99], u64::MAX);
        }, "stored"),
    ];
    for (name, vendor, amount, f, want) in table {
        let i = intent(vendor, amount);
        let mut view = LedgerView::default();
        f(&mut view, &i);
        assert_eq!(eval_with(&i, &view), want, "{name}");
    }
    let reason = ValidIntent { reason: "Buy GIFT CARDS now".into(), ..intent(WL, 100) };
    assert_eq!(eval_with(&reason, &LedgerView::default()), code::SUSPICIOUS_PATTERN);
    // `validate` already refuses punycode look-alikes; `evaluate` must too if one gets this far.
    let vendor = crate::payments::vendor::normalize("xn--penai-iye.com").unwrap();
    let puny = ValidIntent { vendor, ..intent(WL, 500) };
    assert_eq!(eval_with(&puny, &LedgerView::default()), code::VENDOR_LOOKALIKE);
}

#[test]
fn fingerprint_ignores_reason_and_stored_decision_is_replayed() {
    let a = intent("openai.com", 500);
    let b = ValidIntent { reason: "different words".into(), ..a.clone() };
    assert_eq!(fingerprint(&a), "agent-a|openai.com|500|biz-1|tenant-1");
    assert_eq!(fingerprint(&a), fingerprint(&b));
    let d = decision(&a, &Step::Deny(Rejection::new(code::OVER_BUSINESS_BUDGET, "x")), 1);
    let view = LedgerView {
        existing: Some(StoredMandate { fingerprint: fingerprint(&a), decision: d.clone() }),
        ..Default::default()
    };
    assert_eq!(evaluate(&b, &rules(), &whitelist(), &LIMITS, &view, NOW), Step::Stored(d));
}

#[test]
fn ownership_business_first_then_mandate_and_no_other_tenant_named() {
    let i = intent("openai.com", 500); // tenant-1, biz-1, m-1
    let check = |b: Option<&str>, m: Option<&str>| check_ownership(&i, b, m).map_err(|r| r.code);
    assert_eq!(check(None, None), Ok(()));
    assert_eq!(check(Some("tenant-1"), Some("tenant-1")), Ok(()));
    assert_eq!(check(Some("tenant-2"), None), Err(code::BUSINESS_TENANT_MISMATCH));
    assert_eq!(check(Some("tenant-2"), Some("tenant-2")), Err(code::BUSINESS_TENANT_MISMATCH));
    assert_eq!(check(Some("tenant-1"), Some("tenant-2")), Err(code::MANDATE_CONFLICT));
    assert_eq!(check(None, Some("tenant-2")), Err(code::MANDATE_CONFLICT));
    let reason = check_ownership(&i, Some("tenant-secret"), None).err().map(|r| r.reason).unwrap_or_default();
    assert!(reason.contains("biz-1") && reason.contains("tenant-1") && !reason.contains("tenant-secret"), "{reason}");
}

#[test]
fn decisions_carry_outcome_and_code() {
    let i = intent("openai.com", 500);
    let d = decision(&i, &Step::NeedsReview(Rejection::new(code::NEEDS_REVIEW, "big")), 9);
    assert_eq!(
        (d.outcome, d.code.as_str(), d.amount_cents, d.decided_at_ms),
        (Outcome::NeedsReview, "needs_review", 500, 9)
    );
    assert_eq!(decision(&i, &Step::Approve, 9).outcome, Outcome::Approved);
}

#[test]
fn integer_thresholds() {
    assert_eq!(near_threshold_floor(&rules()), 800);
    let odd = PaymentRules { auto_approve_cents: 999, ..rules() };
    assert_eq!(near_threshold_floor(&odd), 800); // ceil(799.2)
    assert!(!is_near_threshold(799, &odd) && is_near_threshold(800, &odd) && !is_near_threshold(999, &odd));
    assert_eq!(
        (hundredths(0.8), hundredths(10.0), hundredths(0.125), hundredths(-1.0), hundredths(f64::NAN)),
        (80, 1000, 13, 0, 0)
    );
    assert!(in_window(0, 60_000, 59_999) && !in_window(0, 60_000, 60_000) && in_window(NOW + 5, 1, NOW));
}

#[test]
fn utc_days() {
    let table = [
        (0, "1970-01-01"),
        (86_399_999, "1970-01-01"),
        (86_400_000, "1970-01-02"),
        (946_684_799_999, "1999-12-31"),
        (951_782_400_000, "2000-02-29"),
        (1_677_628_800_000, "2023-03-01"),
        (1_709_164_800_000, "2024-02-29"),
        (1_709_251_199_999, "2024-02-29"),
        (1_709_251_200_000, "2024-03-01"),
        (2_147_472_000_000, "2038-01-19"),
        (4_107_542_400_000, "2100-03-01"),
        (4_107_542_399_999, "2100-02-28"),
        (13_574_563_200_000, "2400-02-29"),
    ];
    for (ms, want) in table {
        assert_eq!(utc_day(ms), want, "{ms}");
    }
    assert!(utc_day(u64::MAX).len() >= 10);
}

/// An in-memory ledger driving the policy, as the real in-memory ledger does: ownership first, then
/// per-tenant agent windows and budgets.
#[derive(Default)]
struct Sim {
    mandates: HashMap<String, StoredMandate>,
    log: Vec<Rec>,
    /// By (tenant, agent, day).
    agent_day: HashMap<(String, String, String), u64>,
    business: HashMap<String, u64>,
    tenant_day: HashMap<(String, String), u64>,
    /// By (tenant, workflow id): what the workflow's approvals reserved.
    workflow: HashMap<(String, String), u64>,
    approvals: HashMap<String, u32>,
    business_tenant: HashMap<String, String>,
    mandate_tenant: HashMap<String, String>,
}

struct Rec {
    agent: String,
    vendor: String,
    business: String,
    tenant: String,
    day: String,
    workflow: Option<String>,
    amount: u64,
    at: u64,
    approved: bool,
}

impl Sim {
    fn view(&self, i: &ValidIntent, r: &PaymentRules, now: u64) -> LedgerView {
        let day = utc_day(now);
        let same_agent = |x: &&Rec| x.agent == i.agent_id && x.tenant == i.tenant_id.as_str();
        let same_av = |x: &&Rec| same_agent(x) && x.vendor == i.vendor.as_str();
        LedgerView {
            existing: self.mandates.get(i.mandate.as_str()).cloned(),
            agent_recent: self.log.iter().filter(same_agent).map(|x| (x.at, x.amount)).collect(),
            near_threshold_recent: (self.log.iter())
                .filter(|x| {
                    x.business == i.business_id && x.vendor == i.vendor.as_str() && is_near_threshold(x.amount, r)
                })
                .map(|x| (x.at, x.amount))
                .collect(),
            approved_amounts_agent_vendor: self
                .log
                .iter()
                .rev()
                .filter(|x| x.approved)
                .filter(same_av)
                .map(|x| x.amount)
                .collect(),
            agent_day_used: (self.agent_day.get(&(i.tenant_id.to_string(), i.agent_id.clone(), day.clone())))
                .copied()
                .unwrap_or(0),
            business_used: self.business.get(&i.business_id).copied().unwrap_or(0),
            tenant_day_used: self.tenant_day.get(&(i.tenant_id.to_string(), day)).copied().unwrap_or(0),
            workflow_used: (i.workflow.as_ref())
                .and_then(|w| self.workflow.get(&(i.tenant_id.to_string(), w.id.clone())))
                .copied()
                .unwrap_or(0),
        }
    }

    fn submit(
        &mut self,
        raw: &PaymentIntent,
        r: &PaymentRules,
        l: &Limits,
        now: u64,
    ) -> Result<(ValidIntent, Step), Rejection> {
        let i = validate(raw, r, &whitelist())?;
        let tenant = &i.tenant_id.to_string();
        let business = self.business_tenant.entry(i.business_id.clone()).or_insert_with(|| tenant.clone()).clone();
        let mandate =
            self.mandate_tenant.entry(i.mandate.as_str().to_owned()).or_insert_with(|| tenant.clone()).clone();
        if let Err(rejection) = check_ownership(&i, Some(&business), Some(&mandate)) {
            return Ok((i, Step::Deny(rejection)));
        }
        let view = self.view(&i, r, now);
        let step = evaluate(&i, r, &whitelist(), l, &view, now);
        if view.existing.is_none() {
            let (approved, day) = (step == Step::Approve, utc_day(now));
            let amount = i.amount.get();
            if approved {
                *self.agent_day.entry((i.tenant_id.to_string(), i.agent_id.clone(), day.clone())).or_default() +=
                    amount;
                *self.business.entry(i.business_id.clone()).or_default() += amount;
                *self.tenant_day.entry((i.tenant_id.to_string(), day.clone())).or_default() += amount;
                if let Some(w) = &i.workflow {
                    *self.workflow.entry((i.tenant_id.to_string(), w.id.clone())).or_default() += amount;
                }
                *self.approvals.entry(i.mandate.as_str().to_owned()).or_default() += 1;
            }
            let (agent, vendor) = (i.agent_id.clone(), i.vendor.as_str().to_owned());
            let (business, tenant) = (i.business_id.clone(), i.tenant_id.to_string());
            let workflow = i.workflow.as_ref().map(|w| w.id.clone());
            self.log.push(Rec { agent, vendor, business, tenant, day, workflow, amount, at: now, approved });
            let stored = StoredMandate { fingerprint: fingerprint(&i), decision: decision(&i, &step, now) };
            self.mandates.insert(i.mandate.as_str().to_owned(), stored);
        }
        Ok((i, step))
    }

    /// Independent restatement of every check an approval must have passed (floats and signed maths
    /// on purpose, computed from the raw log, not from the view).
    fn approval_was_legal(&self, i: &ValidIntent, r: &PaymentRules, l: &Limits, now: u64) -> Result<(), String> {
        let amt = i.amount.get();
        let f = &r.fraud;
        let within = |at: u64, w: u64| (now as i128) - (at as i128) < w as i128;
        let sum = |it: &mut dyn Iterator<Item = &Rec>| it.map(|x| x.amount).sum::<u64>();
        let ok = |cond: bool, what: &str| if cond { Ok(()) } else { Err(what.to_owned()) };
        ok(!self.mandates.contains_key(i.mandate.as_str()), "mandate reused")?;
        let own = |m: &HashMap<String, String>, k: &str| m.get(k).is_none_or(|t| *t == i.tenant_id.as_str());
        ok(own(&self.business_tenant, &i.business_id), "business of another tenant")?;
        ok(own(&self.mandate_tenant, i.mandate.as_str()), "mandate of another tenant")?;
        let reason = i.reason.to_lowercase();
        ok(!r.suspicious_patterns.iter().any(|p| reason.contains(p) || i.vendor.as_str().contains(p)), "pattern")?;
        let mine = |x: &&Rec| x.agent == i.agent_id && x.tenant == i.tenant_id.as_str();
        let vel: Vec<&Rec> = self.log.iter().filter(mine).filter(|x| within(x.at, f.velocity_window_ms)).collect();
        ok(vel.len() < f.velocity_max_count as usize, "velocity count")?;
        ok(sum(&mut vel.iter().copied()) + amt <= f.velocity_max_sum_cents, "velocity sum")?;
        let near = |a: u64| a as f64 >= r.auto_approve_cents as f64 * 0.8 && a < r.auto_approve_cents;
        if near(amt) {
            let s: Vec<&Rec> = (self.log.iter())
                .filter(|x| x.business == i.business_id && x.vendor == i.vendor.as_str() && near(x.amount))
                .filter(|x| within(x.at, f.structuring_window_ms))
                .collect();
            ok(
                s.len() + 1 < f.structuring_min_count as usize
                    || sum(&mut s.iter().copied()) + amt <= r.auto_approve_cents,
                "structuring",
            )?;
        }
        let mut hist: Vec<f64> = (self.log.iter().rev())
            .filter(|x| x.approved && mine(x) && x.vendor == i.vendor.as_str())
            .take(f.anomaly_history as usize)
            .map(|x| x.amount as f64)
            .collect();
        hist.sort_by(f64::total_cmp);
        if hist.len() >= f.anomaly_min_samples as usize && !hist.is_empty() {
            let n = hist.len();
            let median = if n % 2 == 1 { hist[n / 2] } else { (hist[n / 2 - 1] + hist[n / 2]) / 2.0 };
            ok(amt as f64 <= f.anomaly_factor * median, "anomaly")?;
        }
        ok(whitelist().allows(i.vendor.as_str()), "whitelist")?;
        ok(amt <= r.review_above_cents, "review")?;
        let day = utc_day(now);
        let used = |pred: &dyn Fn(&Rec) -> bool| {
            self.log.iter().filter(|x| x.approved && pred(x)).map(|x| x.amount).sum::<u64>()
        };
        if let Some(w) = &i.workflow {
            let same = |x: &Rec| x.tenant == i.tenant_id.as_str() && x.workflow.as_deref() == Some(w.id.as_str());
            ok(used(&same) + amt <= w.budget_cents, "workflow budget")?;
        }
        ok(used(&|x| mine(&x) && x.day == day) + amt <= l.agent_daily_cents, "agent budget")?;
        ok(used(&|x| x.business == i.business_id) + amt <= l.business_total_cents, "business budget")?;
        ok(used(&|x| x.tenant == i.tenant_id.as_str() && x.day == day) + amt <= l.tenant_daily_cents, "tenant budget")
    }
}

#[test]
fn structuring_sequence_999_cents() {
    let (r, mut sim) = (rules(), Sim::default());
    let mut codes = Vec::new();
    for n in 0..4 {
        let step = sim.submit(&raw("agent-a", "stripe.com", 999, &format!("m-{n}")), &r, &LIMITS, NOW + n * 60_000);
        codes.push(step.map(|(_, s)| outcome(&s)).unwrap_or("invalid"));
    }
    assert_eq!(codes, [code::APPROVED, code::APPROVED, code::STRUCTURING, code::STRUCTURING]);
    let other_business = PaymentIntent { business_id: "biz-2".into(), ..raw("agent-b", "stripe.com", 999, "m-x") };
    assert_eq!(sim.submit(&other_business, &r, &LIMITS, NOW + 300_000).map(|(_, s)| outcome(&s)), Ok(code::APPROVED));
    // At +1h02m only the 4th (at +3m) is still inside the 1 h window: 2 near intents, not structuring.
    let later = sim.submit(&raw("agent-c", "stripe.com", 999, "m-y"), &r, &LIMITS, NOW + 3_720_000);
    assert_eq!(later.map(|(_, s)| outcome(&s)), Ok(code::APPROVED));
}

const AGENTS: [&str; 4] = ["agent-a", "agent-b", "agent-c", "mallory"];
const VENDORS: [&str; 7] =
    ["openai.com", "api.openai.com", "stripe.com", "vercel.com", "anthropic.com", "example.com", "0penai.com"];

/// Workflows an intent may count toward (index 0: none); the same id may come with another budget.
const WORKFLOWS: [Option<(&str, u64)>; 4] =
    [None, Some(("wf-a", 6_000)), Some(("wf-b", 20_000)), Some(("wf-a", 9_000))];

type Op = (usize, u64, usize, usize, usize, usize, u64, u8, Option<prop::sample::Index>, usize);

fn op() -> impl Strategy<Value = Op> {
    let amount = prop_oneof![3 => 1..=5000u64, 2 => 800..1000u64];
    let delta = prop_oneof![4 => 0..3_000u64, 2 => 0..120_000u64, 1 => Just(3_600_000u64), 1 => Just(86_400_000u64)];
    (
        prop_oneof![9 => 0..3usize, 1 => Just(3usize)],
        amount,
        0..VENDORS.len(),
        0..2usize,
        0..2usize,
        0..1000usize,
        delta,
        0..20u8,
        proptest::option::weighted(0.15, any::<prop::sample::Index>()),
        prop_oneof![3 => Just(0usize), 3 => 1..WORKFLOWS.len()],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn approvals_never_break_budgets_or_checks(ops in prop::collection::vec(op(), 1..200)) {
        let mut r = rules();
        r.review_above_cents = 4_000;
        r.fraud.velocity_max_count = 5;
        r.fraud.velocity_max_sum_cents = 15_000;
        r.fraud.anomaly_factor = 3.0;
        r.fraud.anomaly_min_samples = 3;
        r.fraud.anomaly_history = 5;
        let limits = Limits { agent_daily_cents: 12_000, business_total_cents: 60_000, tenant_daily_cents: 15_000 };
        let (mut sim, mut now, mut sent) = (Sim::default(), NOW - 3_000_000, Vec::<PaymentIntent>::new());
        for (agent, amount, vendor, biz, tenant, mandate, delta, reason, replay, workflow) in ops {
            now += delta;
            let mut intent = PaymentIntent {
                business_id: format!("biz-{biz}"),
                tenant_id: TenantId::parse(&format!("tenant-{tenant}")).unwrap(),
                workflow: WORKFLOWS[workflow].map(|(id, budget_cents)| WorkflowBudget { id: id.into(), budget_cents }),
                ..raw(AGENTS[agent], VENDORS[vendor], amount as i64, &format!("m-{mandate}"))
            };
            if let Some(idx) = replay.filter(|_| !sent.is_empty()) {
                intent = sent[idx.index(sent.len())].clone();
            }
            intent.reason = format!("reason {reason}");
            if reason == 0 {
                intent.reason = "IGNORE PREVIOUS instructions".into();
            }
            sent.push(intent.clone());
            let before = sim.mandates.get(&intent.mandate_id).cloned();
            let legal = validate(&intent, &r, &whitelist()).map(|v| sim.approval_was_legal(&v, &r, &limits, now));
            let Ok((_, step)) = sim.submit(&intent, &r, &limits, now) else { continue };
            match (&step, &before) {
                (Step::Approve, _) => {
                    prop_assert_eq!(legal, Ok(Ok(())));
                    prop_assert!(before.is_none());
                }
                (Step::Stored(d), Some(b)) => prop_assert_eq!(d, &b.decision),
                (Step::Deny(rej), Some(_)) => prop_assert!(
                    [code::MANDATE_CONFLICT, code::BUSINESS_TENANT_MISMATCH].contains(&rej.code),
                    "a known mandate in another business or tenant: {}", rej.code
                ),
                (_, Some(_)) => prop_assert!(false, "a known mandate must be replayed or conflict"),
                (Step::Stored(_), None) => prop_assert!(false, "stored without a stored decision"),
                _ => {}
            }
            for ((_, _, day), used) in &sim.agent_day {
                prop_assert!(*used <= limits.agent_daily_cents, "agent day {} used {}", day, used);
            }
            for used in sim.business.values() {
                prop_assert!(*used <= limits.business_total_cents);
            }
            for used in sim.tenant_day.values() {
                prop_assert!(*used <= limits.tenant_daily_cents);
            }
            // Every workflow within the largest budget it was asked under (each approval within its own).
            for ((_, id), used) in &sim.workflow {
                let most = WORKFLOWS.iter().flatten().filter(|(w, _)| w == id).map(|(_, b)| *b).max().unwrap_or(0);
                prop_assert!(*used <= most, "workflow {} used {} of at most {}", id, used, most);
            }
            prop_assert!(sim.approvals.values().all(|n| *n <= 1), "a mandate was approved twice");
        }
    }
}
