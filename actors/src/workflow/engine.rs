//! The engine: what carries workflows on a bus, from any node. [`Workflows`] starts a validated,
//! routed plan, applies inputs (a task's outcome, cancel, retry, the clock) to the stored state with
//! compare-and-set, and carries out the effects each transition left in the outbox.
//!
//! **Order of writes** (what makes a node killed at any moment lose nothing): a transition is saved
//! *with* its effects in the outbox (one CAS); then the effects are carried out, each idempotent (a
//! publish has a derived task id, the bus deduplicates it; a cancel of a final task does nothing; an
//! event has a unique `event_id`); then a second CAS removes the effects carried out. A node that dies
//! in between leaves them in the outbox, and the sweeper ([`Workflows::sweep`], run by every node)
//! carries them out again. Two nodes may carry out the same effect; events are therefore at least once.
//!
//! The worker calls [`Workflows::task_ended`] right after it wrote a step's final outcome; when that
//! call fails (or the node dies first), the sweeper reads the task's record and applies the outcome.
//!
//! A step whose task would not decode at its agent (over `bus.max_payload_bytes`) is not published: its
//! publish is replaced by the step's dead outcome in the same CAS that clears the outbox
//! ([`Refusal`]), so no later drive publishes it and the workflow fails (or goes on) at once.

use super::envelope::Refusal;
use super::machine::{self, Input, Refused, Start, TaskOutcome};
use super::plan::Plan;
use super::route::{route, Fleet};
use super::settings::WorkflowSettings;
use super::state::{Effect, StepStatus, Workflow, WorkflowStatus};
use super::store::{Created, ListFilter, Page, StoreError, StoredEvent, WorkflowStore};
use super::validate::{validate, PlanError};
use crate::bus::{Bus, BusError};
use crate::metrics::Metrics;
use crate::policy::backoff::Backoff;
use crate::policy::retry::Retry;
use crate::roster::Roster;
use crate::settings::RuntimeSettings;
use crate::task::{TaskEnvelope, TaskId, TenantId, TopicName};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How many times one update is tried against concurrent writers of the same workflow.
const MAX_CONFLICTS: u32 = 20;
/// How long one driver holds a workflow's outbox before another may take over (a driver that died).
const DRIVE_LEASE: Duration = Duration::from_secs(10);
/// Pace of those tries (short: the other writer is a few round trips from done).
const CONFLICT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(200), 2.0);

/// Why a workflow operation failed. [`WorkflowError::http_status`] is what the API answers.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The plan broke a rule (names the step and the rule): nothing was started.
    #[error("invalid plan: {0}")]
    Plan(#[from] PlanError),
    #[error("no workflow `{id}` (unknown, or ended more than workflows.retention ago)")]
    NotFound { id: String },
    /// Cancel or retry in a status that does not allow it.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Other writers kept changing the workflow; nothing was applied. Try again.
    #[error("workflow `{id}` changed under {MAX_CONFLICTS} tries in a row; try again")]
    Contended { id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// The payment ledger could not say what the business has left to spend.
    #[error("payments: {0}")]
    Payments(String),
}

impl WorkflowError {
    /// 400 invalid plan, 404 unknown, 409 refused, 503 contended or the store/bus unreachable.
    pub fn http_status(&self) -> u16 {
        match self {
            WorkflowError::Plan(_) => 400,
            WorkflowError::NotFound { .. } => 404,
            WorkflowError::Refused(_) => 409,
            WorkflowError::Contended { .. }
            | WorkflowError::Store(_)
            | WorkflowError::Bus(_)
            | WorkflowError::Payments(_) => 503,
        }
    }
}

/// Who starts a workflow, and for whom. Every field is optional but the tenant (the caller's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRequest {
    pub tenant: TenantId,
    /// The business; else the plan's `business_id`; else the workflow id.
    pub business: Option<String>,
    /// Else the workflow id.
    pub correlation: Option<String>,
    /// The template the plan came from; `business` announces `business.created` when it succeeds.
    pub template: Option<String>,
    pub projected_revenue: Option<u64>,
    /// Else the plan's `workflow_id`; else a new ULID. Starting an id that exists returns that one.
    pub workflow_id: Option<String>,
    /// What the business may still spend (cents), when the caller knows it: the plan must fit.
    pub remaining_budget_cents: Option<u64>,
}

/// What [`Workflows::start`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    pub workflow: Workflow,
    /// The id existed: this is that workflow, and nothing new was started.
    pub existed: bool,
}

/// What one [`Workflows::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub visited: usize,
    /// Outcomes found on task records and applied (their hook had not run).
    pub outcomes: usize,
    /// Workflows whose outbox was carried out again.
    pub redriven: usize,
    /// Deadlines that failed a workflow.
    pub deadlines: usize,
    /// Steps whose task was missing and was published again.
    pub republished: usize,
    pub errors: usize,
    pub pruned: usize,
}

/// The workflows of one bus; cheap to clone.
#[derive(Clone)]
pub struct Workflows {
    pub(super) store: WorkflowStore,
    pub(super) bus: Bus,
    pub(super) settings: Arc<WorkflowSettings>,
    /// Agent name → its topic (a step names an agent; its task goes to the agent's topic).
    pub(super) agents: Arc<BTreeMap<String, TopicName>>,
    pub(super) result_ttl: Duration,
    /// `bus.max_payload_bytes`: a step's task must decode at its agent under this limit.
    pub(super) max_payload_bytes: usize,
    pub(super) metrics: Option<Arc<Metrics>>,
    pub(super) payments: Option<crate::payments::authority::Authority>,
}

impl Workflows {
    /// The workflows carried by `bus`, for the agents of `roster`, with `settings.workflows`.
    pub fn new(bus: Bus, roster: &Roster, settings: &RuntimeSettings) -> Workflows {
        let agents = roster.agents.iter().map(|a| (a.name.clone(), a.topic.clone())).collect();
        Workflows {
            store: WorkflowStore::for_bus(&bus, &settings.workflows),
            bus,
            settings: Arc::new(settings.workflows.clone()),
            agents: Arc::new(agents),
            result_ttl: settings.bus.result_ttl,
            max_payload_bytes: settings.bus.max_payload_bytes,
            metrics: None,
            payments: None,
        }
    }

    /// Count transitions, step latencies and time to first step in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Workflows {
        self.metrics = Some(metrics);
        self
    }

    /// Post each ended workflow's spend summary through the payment authority (its ledger and its
    /// `payments.dashboard_webhook`).
    pub fn with_payments(mut self, authority: crate::payments::authority::Authority) -> Workflows {
        self.payments = Some(authority);
        self
    }

    pub fn store(&self) -> &WorkflowStore {
        &self.store
    }

    /// What the business may still spend, from the payment authority's budget and ledger (`None`
    /// without payments: then only the workflow's own budget is checked).
    async fn business_budget_left(&self, tenant: &TenantId, business: &str) -> Result<Option<u64>, WorkflowError> {
        let Some(a) = &self.payments else { return Ok(None) };
        let limit = a.settings().budgets.limits("", business, tenant.as_str()).business_total_cents;
        let used =
            a.ledger().usage_business(tenant, business).await.map_err(|e| WorkflowError::Payments(e.to_string()))?;
        Ok(Some(limit.saturating_sub(used.reserved.saturating_add(used.captured))))
    }

    /// The roster's agent names (what a plan's `agent` may name; told to a planner agent).
    pub fn agent_names(&self) -> Vec<String> {
        self.agents.keys().cloned().collect()
    }

    pub fn settings(&self) -> &WorkflowSettings {
        &self.settings
    }

    /// Validate `plan` (limits and routes from the settings, the roster's agents and their queue
    /// depths), route every step, store the new workflow and publish its first steps. An id that
    /// exists already returns that workflow (`existed`), so a creator that runs again is idempotent.
    pub async fn start(&self, plan: Plan, req: StartRequest) -> Result<Started, WorkflowError> {
        let id = req
            .workflow_id
            .clone()
            .or_else(|| plan.workflow_id.clone())
            .unwrap_or_else(|| ulid::Ulid::generate().to_string());
        if let Some((existing, _)) = self.store.load(&id).await? {
            let workflow = self.drive(&id).await.unwrap_or(existing);
            return Ok(Started { workflow, existed: true });
        }
        let mut plan = plan;
        plan.workflow_id = Some(id.clone());
        let fleet = self.fleet(&plan).await;
        let rules = &self.settings.routes;
        let business = req.business.clone().or_else(|| plan.business_id.clone()).unwrap_or_else(|| id.clone());
        let remaining = match req.remaining_budget_cents {
            Some(r) => Some(r),
            None => self.business_budget_left(&req.tenant, &business).await?,
        };
        validate(&plan, &self.settings.limits, rules, &fleet, remaining)?;
        let mut routes = Vec::with_capacity(plan.steps.len());
        for s in &plan.steps {
            let r = route(s.agent.as_deref(), s.capability.as_deref(), rules, &fleet).map_err(|e| PlanError {
                step: Some(s.id.clone()),
                rule: super::validate::rule::UNROUTABLE,
                message: e.to_string(),
            })?;
            routes.push(r);
        }
        let start = Start {
            id: id.clone(),
            tenant_id: req.tenant,
            business_id: req.business.or_else(|| plan.business_id.clone()).unwrap_or_else(|| id.clone()),
            correlation_id: req.correlation.unwrap_or_else(|| id.clone()),
            template: req.template,
            projected_revenue_cents: req.projected_revenue,
            now: crate::task::now_ms(),
        };
        let wf = machine::create(&plan, routes, start);
        match self.store.create(&wf).await? {
            Created::New => {
                self.count_status(None, &wf);
                tracing::info!(workflow = %id, steps = wf.steps.len(), tenant = %wf.tenant_id, business = %wf.business_id, "workflow started");
                let workflow = self.drive(&id).await?;
                Ok(Started { workflow, existed: false })
            }
            Created::Exists(existing, _) => {
                let workflow = self.drive(&id).await.unwrap_or(*existing);
                Ok(Started { workflow, existed: true })
            }
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<Workflow>, WorkflowError> {
        Ok(self.store.load(id).await?.map(|(w, _)| w))
    }

    pub async fn list(&self, filter: &ListFilter) -> Result<Page, WorkflowError> {
        Ok(self.store.list(filter).await?)
    }

    /// Events after stream id `after`, oldest first.
    pub async fn events(&self, after: Option<&str>, limit: usize) -> Result<Vec<StoredEvent>, WorkflowError> {
        Ok(self.store.read_events(after, limit).await?)
    }

    /// Cancel a running workflow: no new step starts, running steps are cancelled at their agents, and
    /// once they have ended the compensations run. Refused (409) unless it is running.
    pub async fn cancel(&self, id: &str) -> Result<Workflow, WorkflowError> {
        self.apply(id, Input::Cancel).await
    }

    /// Run a failed workflow again from its failed steps, keeping the outputs of those that
    /// succeeded. Refused (409) unless it failed.
    pub async fn retry(&self, id: &str) -> Result<Workflow, WorkflowError> {
        self.apply(id, Input::Retry).await
    }

    /// The worker's hook, right after a task's final outcome is written: advance its workflow. Returns
    /// whether the outcome changed it (`false` for a task of no workflow, an outcome already applied,
    /// or a workflow that no longer exists).
    pub async fn task_ended(&self, env: &TaskEnvelope, outcome: TaskOutcome) -> Result<bool, WorkflowError> {
        let Some(r) = &env.workflow else { return Ok(false) };
        self.task_of_ended(&r.id, env.task_id, outcome).await
    }

    /// [`Workflows::task_ended`] by ids: for a task whose envelope is not at hand (an entry its agent
    /// could not decode, whose ids were read from what was left of it).
    pub async fn task_of_ended(
        &self,
        workflow: &str,
        task_id: TaskId,
        outcome: TaskOutcome,
    ) -> Result<bool, WorkflowError> {
        match self.apply_changed(workflow, Input::TaskEnded { task_id, outcome }).await {
            Ok((_, changed)) => Ok(changed),
            Err(WorkflowError::NotFound { .. }) => {
                tracing::warn!(%workflow, %task_id, "a workflow's task ended, but the workflow is gone (past its retention?)");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Load, apply `input`, save (CAS, retried on conflict), then carry out the effects.
    pub async fn apply(&self, id: &str, input: Input) -> Result<Workflow, WorkflowError> {
        Ok(self.apply_changed(id, input).await?.0)
    }

    pub(super) async fn apply_changed(&self, id: &str, input: Input) -> Result<(Workflow, bool), WorkflowError> {
        let mut conflicts = Retry::new(CONFLICT_BACKOFF);
        loop {
            let (mut wf, version) = self.load(id).await?;
            let before = wf.clone();
            let now = crate::task::now_ms();
            let changed = machine::apply(&mut wf, input.clone(), now)?;
            if !changed {
                let wf = if wf.outbox.is_empty() { wf } else { self.drive(id).await? };
                return Ok((wf, false));
            }
            if self.store.save(&wf, version).await? {
                self.observe(&before, &wf, now);
                return Ok((self.drive(id).await?, true));
            }
            self.conflict(id, &mut conflicts).await?;
        }
    }

    /// Carry out every effect in the workflow's outbox, then remove them (CAS; effects added meanwhile
    /// by another writer are carried out in the next round). One driver at a time (the store's drive
    /// lease): when another holds it, this returns the stored state and leaves the work to it — it
    /// looks at the outbox once more after letting go, so nothing added meanwhile waits for the
    /// sweeper. Returns the workflow as stored after.
    pub async fn drive(&self, id: &str) -> Result<Workflow, WorkflowError> {
        Ok(self.drive_reporting(id).await?.0)
    }

    /// [`Workflows::drive`], saying whether this call held the lease at least once (`false`: another
    /// driver has it, and nothing was carried out here).
    pub(super) async fn drive_reporting(&self, id: &str) -> Result<(Workflow, bool), WorkflowError> {
        let token = ulid::Ulid::generate().to_string();
        let mut held = false;
        loop {
            if !self.store.lease(id, &token, DRIVE_LEASE).await? {
                return Ok((self.load(id).await?.0, held));
            }
            held = true;
            let driven = self.drive_held(id).await;
            if let Err(e) = self.store.release_or_keep_trying(id, &token, DRIVE_LEASE).await {
                tracing::warn!(workflow = %id, error = %e, "cannot give back the drive lease now; trying again in the background");
            }
            driven?;
            let (fresh, _) = self.load(id).await?;
            if fresh.outbox.is_empty() {
                return Ok((fresh, held));
            }
        }
    }

    /// [`Workflows::drive`] with the lease held. A publish that was refused is replaced, in the same
    /// save that removes it, by its step's dead outcome.
    async fn drive_held(&self, id: &str) -> Result<(), WorkflowError> {
        let mut conflicts = Retry::new(CONFLICT_BACKOFF);
        let (mut wf, mut version) = self.load(id).await?;
        loop {
            if wf.outbox.is_empty() {
                return Ok(());
            }
            let done = wf.outbox.clone();
            let refused = self.execute(&wf, &done).await?;
            loop {
                let before = wf.clone();
                let now = crate::task::now_ms();
                remove_done(&mut wf.outbox, &done);
                for (task_id, refusal) in &refused {
                    let input = Input::TaskEnded { task_id: *task_id, outcome: refusal.outcome() };
                    machine::apply(&mut wf, input, now)?;
                }
                if self.store.save(&wf, version).await? {
                    version += 1;
                    if !refused.is_empty() {
                        self.observe(&before, &wf, now);
                    }
                    break;
                }
                self.conflict(id, &mut conflicts).await?;
                (wf, version) = self.load(id).await?;
            }
        }
    }

    pub(super) async fn load(&self, id: &str) -> Result<(Workflow, u64), WorkflowError> {
        self.store.load(id).await?.ok_or_else(|| WorkflowError::NotFound { id: id.to_string() })
    }

    async fn conflict(&self, id: &str, conflicts: &mut Retry) -> Result<(), WorkflowError> {
        let f = conflicts.failed();
        if f.failures >= MAX_CONFLICTS {
            return Err(WorkflowError::Contended { id: id.to_string() });
        }
        tokio::time::sleep(f.delay).await;
        Ok(())
    }

    /// The topic of an agent (a name not in the roster is taken as its own topic).
    pub(super) fn topic(&self, agent: &str) -> Option<TopicName> {
        self.agents.get(agent).cloned().or_else(|| agent.parse().ok())
    }

    /// Carry out `effects` in order, events in batches. The first failure stops (the rest stay in the
    /// outbox for the next drive). Returns the publishes refused, by task id.
    async fn execute(&self, wf: &Workflow, effects: &[Effect]) -> Result<Vec<(TaskId, Refusal)>, WorkflowError> {
        let mut events = Vec::new();
        let mut refused = Vec::new();
        for e in effects {
            if let Effect::Emit { event } = e {
                events.push((**event).clone());
                continue;
            }
            self.store.append_events(&std::mem::take(&mut events)).await?;
            match e {
                Effect::Publish { kind, step, task_id } => {
                    if let Err(r) = self.publish(wf, *kind, step, *task_id).await? {
                        refused.push((*task_id, r));
                    }
                }
                Effect::Cancel { agent, task_id } => {
                    if let Some(topic) = self.topic(agent) {
                        let r = self.bus.cancel(&topic, &task_id.to_string()).await?;
                        tracing::info!(workflow = %wf.id, %agent, %task_id, status = ?r.map(|r| r.status), "asked the agent to cancel a running step");
                    }
                }
                Effect::Summary => super::summary::post(self, wf).await,
                Effect::Emit { .. } => {}
            }
        }
        self.store.append_events(&events).await?;
        Ok(refused)
    }

    /// What routing knows: the roster's agents and the queue depths of those the route rules name.
    async fn fleet(&self, plan: &Plan) -> Fleet {
        let mut fleet = Fleet { agents: self.agents.keys().cloned().collect(), depth: BTreeMap::new() };
        let capabilities: Vec<&str> = plan.steps.iter().filter_map(|s| s.capability.as_deref()).collect();
        for r in self.settings.routes.iter().filter(|r| capabilities.contains(&r.capability.as_str())) {
            if fleet.depth.contains_key(&r.agent) {
                continue;
            }
            let Some(topic) = self.agents.get(&r.agent) else { continue };
            match self.bus.stats(topic).await {
                Ok(s) => {
                    fleet.depth.insert(r.agent.clone(), s.lag + s.pending + s.retrying);
                }
                Err(e) => {
                    tracing::warn!(agent = %r.agent, error = %e, "cannot read an agent's queue depth; routing takes it as 0")
                }
            }
        }
        fleet
    }

    fn count_status(&self, before: Option<WorkflowStatus>, after: &Workflow) {
        if let Some(m) = &self.metrics {
            if before != Some(after.status) {
                m.workflow_transitions
                    .get_or_create(&crate::metrics::StatusLabel { status: after.status.as_str() })
                    .inc();
            }
        }
    }

    /// Metrics of one saved transition: status changes, steps that ended (latency from publish to
    /// outcome), the first step's outcome (time from the workflow's start).
    fn observe(&self, before: &Workflow, after: &Workflow, now: u64) {
        self.count_status(Some(before.status), after);
        let Some(m) = &self.metrics else { return };
        for (b, a) in before.steps.iter().zip(&after.steps) {
            if b.status == StepStatus::Running && a.status != StepStatus::Running {
                if let (Some(s), Some(e)) = (a.started_at, a.ended_at) {
                    m.workflow_step_latency.observe(e.saturating_sub(s) as f64 / 1000.0);
                }
            }
        }
        if before.completed == 0 && after.completed > 0 {
            m.workflow_first_step.observe(now.saturating_sub(after.created_at) as f64 / 1000.0);
        }
    }
}

/// Remove from `outbox` one occurrence of each effect in `done` (effects are unique — derived task
/// ids, numbered events — so this removes exactly what was carried out, wherever a concurrent writer
/// left it).
fn remove_done(outbox: &mut Vec<Effect>, done: &[Effect]) {
    for d in done {
        if let Some(i) = outbox.iter().position(|e| e == d) {
            outbox.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_carried_out_leaves_the_outbox() {
        let a = Effect::Summary;
        let t = TaskId::generate();
        let b = Effect::Cancel { agent: "x".into(), task_id: t };
        let c = Effect::Cancel { agent: "y".into(), task_id: t };
        let mut outbox = vec![a.clone(), b.clone(), c.clone()];
        remove_done(&mut outbox, &[a, b]);
        assert_eq!(outbox, vec![c]);
    }
}
