//! `genesis payments …` and `genesis budget show`: the same authority the MetaAgent uses, on the
//! shared Redis ledger. Mandates are found by id and businesses by name whatever their tenant; only
//! `budget show` and `payments ledger` take `--tenant`, to narrow what they list.

use super::Exit;
use crate::cli::{BudgetCommand, PaymentsCommand, RedisOpt, ReviewCommand};
use crate::config::ServiceConfig;
use anyhow::{bail, Context, Result};
use genesis_actors::payments::authority::Authority;
use genesis_actors::payments::ledger::redis::RedisLedger;
use genesis_actors::payments::ledger::{Ledger, MandateRecord, Settle, Settled};
use genesis_actors::payments::notify::{self, Channel};
use genesis_actors::payments::policy::utc_day;
use genesis_actors::payments::types::{Outcome, PaymentIntent};
use genesis_actors::task::now_ms;
use serde::Serialize;

/// Exit status of `payments intent` for a denial (1 is kept for "no decision could be made").
pub const EXIT_DENIED: u8 = 3;
/// Exit status of `payments intent` for an intent held for review (`genesis payments review`).
pub const EXIT_HELD_FOR_REVIEW: u8 = 4;

async fn authority(cfg: &ServiceConfig, redis: &RedisOpt) -> Result<Authority> {
    let Some(target) = super::redis_target(cfg, redis)? else {
        bail!("no Redis URL: the payment ledger is shared through Redis; pass --redis-url or set GENESIS_REDIS_URL");
    };
    let shown = target.shown.clone();
    let ledger = RedisLedger::open(&super::connector(cfg, target)?)
        .await
        .with_context(|| format!("cannot connect to {shown}"))?;
    Ok(Authority::new(cfg.payments.clone(), Ledger::Redis(ledger), None))
}

fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<()> {
    if json {
        outln!("{}", serde_json::to_string(value)?);
    } else {
        outln!("{}", text());
    }
    Ok(())
}

fn record_line(m: &MandateRecord) -> String {
    let d = &m.decision;
    format!(
        "{}  {}  {} → {}  {} cents  [{}] {}",
        d.mandate_id, m.status, d.agent_id, d.vendor, d.amount_cents, d.code, d.reason
    )
}

fn settled(json: bool, what: &str, mandate: &str, s: Settled) -> Result<()> {
    match s {
        Settled::Done(m) => print(json, &m, || format!("{what}: {}", record_line(&m))),
        Settled::Already(m) => print(json, &m, || format!("already {}: {}", m.status, record_line(&m))),
        Settled::Refused(m) => bail!("mandate {mandate} is {} and cannot be {what}", m.status),
        Settled::Missing => bail!("no mandate {mandate} in the ledger"),
    }
}

pub async fn run(cfg: &ServiceConfig, command: PaymentsCommand) -> Result<()> {
    match command {
        PaymentsCommand::Intent { redis, agent, vendor, amount_cents, reason, mandate, business, tenant, json } => {
            let a = authority(cfg, &redis).await?;
            let intent = PaymentIntent {
                agent_id: agent,
                vendor,
                amount_cents,
                reason,
                mandate_id: mandate,
                business_id: business,
                tenant_id: tenant,
                task_id: None,
                workflow: None,
            };
            let d = a.approve(&intent).await?;
            // The reason as decided: it quotes mandate ids, vendors and agents, whose case matters.
            print(json, &d, || format!("{} [{}]: {}", d.outcome.as_str(), d.code, d.reason))?;
            match d.outcome {
                Outcome::Approved => Ok(()),
                Outcome::Denied => Err(Exit { code: EXIT_DENIED }.into()),
                Outcome::NeedsReview => Err(Exit { code: EXIT_HELD_FOR_REVIEW }.into()),
            }
        }
        PaymentsCommand::Capture { redis, mandate, json } => {
            let s = authority(cfg, &redis).await?.settle(&mandate, Settle::Captured).await?;
            settled(json, "captured", &mandate, s)
        }
        PaymentsCommand::Release { redis, mandate, json } => {
            let s = authority(cfg, &redis).await?.settle(&mandate, Settle::Released).await?;
            settled(json, "released", &mandate, s)
        }
        PaymentsCommand::Review { command } => match command {
            ReviewCommand::List { redis, json } => {
                let list = authority(cfg, &redis).await?.reviews().await?;
                print(json, &list, || {
                    if list.is_empty() {
                        "no intents held for review".into()
                    } else {
                        list.iter().map(record_line).collect::<Vec<_>>().join("\n")
                    }
                })
            }
            ReviewCommand::Approve { redis, mandate, json } => {
                let s = authority(cfg, &redis).await?.review(&mandate, true).await?;
                settled(json, "reviewed", &mandate, s)
            }
            ReviewCommand::Deny { redis, mandate, json } => {
                let s = authority(cfg, &redis).await?.review(&mandate, false).await?;
                settled(json, "reviewed", &mandate, s)
            }
        },
        PaymentsCommand::Ledger { redis, agent, tenant, date, limit, json } => {
            let day = date.unwrap_or_else(|| utc_day(now_ms()));
            if genesis_actors::payments::ledger::redis::day_bounds(&day).is_none() {
                bail!("--date {day}: not a date; write YYYY-MM-DD (UTC)");
            }
            let a = authority(cfg, &redis).await?;
            let log = match &tenant {
                Some(t) => a.ledger().tenant_log(t, &day, limit).await?,
                None => a.ledger().log(&day, limit).await?,
            };
            let entries: Vec<_> =
                log.into_iter().filter(|e| agent.as_deref().is_none_or(|x| e.agent_id == x)).collect();
            print(json, &entries, || {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{}  {:<9} {}  {}  {} → {}  {} cents  [{}]",
                            e.at_ms, e.event, e.tenant_id, e.mandate_id, e.agent_id, e.vendor, e.amount_cents, e.code
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        PaymentsCommand::Summary { redis, business, post, json } => {
            let a = authority(cfg, &redis).await?;
            let s = a.summary(&business).await?;
            if post {
                match notify::post_now(&cfg.payments.notify, Channel::Dashboard, &s.text()).await {
                    Ok(true) => errln!("posted to the dashboard webhook"),
                    Ok(false) => bail!("the dashboard webhook rejected the summary after every attempt (see logs)"),
                    Err(e) => bail!("cannot post: {e} (set payments.notify.dashboard_webhook)"),
                }
            }
            print(json, &s, || s.text())
        }
        PaymentsCommand::Revenue { redis, business, projected_cents } => {
            let a = authority(cfg, &redis).await?;
            a.ledger().set_projected_revenue(&business, projected_cents).await?;
            outln!("projected revenue of {business}: {projected_cents} cents");
            Ok(())
        }
    }
}

pub async fn budget(cfg: &ServiceConfig, command: BudgetCommand) -> Result<()> {
    let BudgetCommand::Show { redis, tenant, json } = command;
    let tenants: Vec<_> = tenant.into_iter().collect();
    let a = authority(cfg, &redis).await?;
    let agents: Vec<String> = cfg.roster.agents.iter().map(|a| a.name.clone()).collect();
    let lines = a.budgets_report(&agents, &tenants).await?;
    print(json, &lines, || {
        let row = |t: &str, k: &str, n: &str, cols: [String; 4]| {
            format!("{t:<20} {k:<15} {n:<28} {:>10} {:>10} {:>10} {:>10}", cols[0], cols[1], cols[2], cols[3])
        };
        let head = ["limit", "reserved", "captured", "remaining"].map(String::from);
        let mut out = vec![row("tenant", "budget", "name", head)];
        for l in &lines {
            let cols = [l.limit_cents, l.reserved_cents, l.captured_cents, l.remaining_cents].map(|c| c.to_string());
            out.push(row(&l.tenant, l.kind, &l.name, cols));
        }
        out.join("\n")
    })
}
