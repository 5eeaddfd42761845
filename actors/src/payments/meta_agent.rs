//! The MetaAgent: the actor through which agents ask for money. It answers `ApprovePaymentIntent` by
//! message (RPC) and releases expired reservations on a timer. It holds no state of its own — the
//! ledger does — so a crash loses nothing: its supervisor restarts it and the next ask goes through.
//!
//! Each request is decided on its own task, so one slow Redis round trip does not queue the others;
//! the atomicity lives in the ledger, not in the actor's mailbox.

use super::authority::Authority;
use super::ledger::{Settle, Settled};
use super::settlement::TaskSettled;
use super::token::{self, Claims, TokenKey};
use super::types::{Decision, PaymentIntent};
use crate::task::{TaskEnvelope, TaskId};
use crate::tenant::TenantId;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub enum MetaMsg {
    ApprovePaymentIntent(PaymentIntent, RpcReplyPort<Result<Decision, String>>),
    Capture(String, RpcReplyPort<Result<Settled, String>>),
    Release(String, RpcReplyPort<Result<Settled, String>>),
    /// Settle every open reservation of a task (its outcome was written).
    SettleTask(TenantId, TaskId, Settle, RpcReplyPort<Result<TaskSettled, String>>),
    /// Release reservations past their deadline (self-sent on a timer).
    Expire,
}

pub struct MetaAgent;

pub struct MetaArgs {
    pub authority: Authority,
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

pub struct MetaState {
    authority: Authority,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl Actor for MetaAgent {
    type Msg = MetaMsg;
    type State = MetaState;
    type Arguments = MetaArgs;

    async fn pre_start(&self, me: ActorRef<MetaMsg>, args: MetaArgs) -> Result<MetaState, ActorProcessingErr> {
        me.cast(MetaMsg::Expire)?;
        Ok(MetaState { authority: args.authority, metrics: args.metrics })
    }

    async fn handle(&self, me: ActorRef<MetaMsg>, msg: MetaMsg, st: &mut MetaState) -> Result<(), ActorProcessingErr> {
        match msg {
            MetaMsg::ApprovePaymentIntent(intent, reply) => {
                let a = st.authority.clone();
                let metrics = st.metrics.clone();
                tokio::spawn(async move {
                    let decision = a.approve(&intent).await.map_err(|e| e.to_string());
                    if let (Some(m), Ok(d)) = (&metrics, &decision) {
                        let outcome = serde_json::to_value(d.outcome).ok().and_then(|v| v.as_str().map(String::from));
                        let l = crate::metrics::DecisionLabel {
                            outcome: outcome.unwrap_or_default(),
                            code: d.code.clone(),
                        };
                        m.payment_decisions.get_or_create(&l).inc();
                    }
                    let _ = reply.send(decision);
                });
            }
            MetaMsg::Capture(id, reply) => {
                let a = st.authority.clone();
                tokio::spawn(async move {
                    let _ = reply.send(a.settle(&id, Settle::Captured).await.map_err(|e| e.to_string()));
                });
            }
            MetaMsg::Release(id, reply) => {
                let a = st.authority.clone();
                tokio::spawn(async move {
                    let _ = reply.send(a.settle(&id, Settle::Released).await.map_err(|e| e.to_string()));
                });
            }
            MetaMsg::SettleTask(tenant, task, to, reply) => {
                let a = st.authority.clone();
                tokio::spawn(async move {
                    let _ = reply.send(a.settle_task(&tenant, &task, to).await.map_err(|e| e.to_string()));
                });
            }
            MetaMsg::Expire => {
                if let Err(e) = st.authority.expire_due().await {
                    tracing::warn!(error = %e, "could not release expired reservations; will retry");
                }
                let every = st.authority.settings().expiry_interval;
                me.send_after(every, || MetaMsg::Expire);
            }
        }
        Ok(())
    }
}

/// How executors reach the MetaAgent. It follows restarts: the root updates the reference. With
/// payments configured it also holds the payment token key: it makes each attempt's token (the worker)
/// and checks the tokens outside agents present (the HTTP API).
#[derive(Clone)]
pub struct PaymentsClient {
    meta: Arc<RwLock<Option<ActorRef<MetaMsg>>>>,
    timeout: Duration,
    tokens: Option<TokenKey>,
}

impl Default for PaymentsClient {
    fn default() -> Self {
        PaymentsClient::new(Duration::from_secs(10))
    }
}

impl std::fmt::Debug for PaymentsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsClient")
            .field("connected", &self.is_connected())
            .field("tokens", &self.tokens.is_some())
            .finish()
    }
}

impl PaymentsClient {
    pub fn new(timeout: Duration) -> Self {
        PaymentsClient { meta: Arc::default(), timeout, tokens: None }
    }

    /// The same client, making and checking payment tokens with `key`.
    pub fn with_tokens(self, key: TokenKey) -> Self {
        PaymentsClient { tokens: Some(key), ..self }
    }

    /// Whether a MetaAgent is running to answer (payments configured, and not restarting).
    pub fn is_connected(&self) -> bool {
        self.meta.read().map(|g| g.is_some()).unwrap_or(false)
    }

    /// The payment token of one attempt of `env`, run by `agent`, until `deadline_ms` (plus
    /// [`token::EXPIRY_MARGIN_MS`]), bound to the task's business and workflow budget
    /// ([`super::for_task`]); `None` without payments, or when the task's business is not a valid
    /// business id (logged: the agent then cannot pay, and says why when it tries).
    pub fn token_for(&self, agent: &str, env: &TaskEnvelope, deadline_ms: u64) -> Option<String> {
        let key = self.tokens.as_ref()?;
        let business = match super::for_task::business_of(env.business_id.as_deref(), &env.payload) {
            Ok(b) => b,
            Err(problem) => {
                tracing::warn!(task_id = %env.task_id, problem = %problem.reason, "no payment token for this task: its business_id is not valid");
                return None;
            }
        };
        let claims = Claims {
            task_id: env.task_id,
            agent: agent.to_string(),
            business,
            tenant: env.tenant_id.clone(),
            expires_at_ms: token::expiry_for(deadline_ms),
            workflow: super::for_task::workflow_of(env.workflow.as_ref()),
        };
        Some(token::sign(key, &claims))
    }

    /// The claims of a token an outside agent presented, if this node's key signed it and it is
    /// still valid. `None`: payments are not configured here.
    pub fn verify_token(&self, presented: &str) -> Option<Result<Claims, token::TokenError>> {
        let key = self.tokens.as_ref()?;
        Some(token::verify(key, presented, crate::task::now_ms()))
    }

    pub fn set(&self, meta: Option<ActorRef<MetaMsg>>) {
        if let Ok(mut g) = self.meta.write() {
            *g = meta;
        }
    }

    fn current(&self) -> Result<ActorRef<MetaMsg>, String> {
        self.meta
            .read()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| "the MetaAgent is not running (restarting, or payments are not configured)".to_string())
    }

    /// Ask for approval. `Err` means no decision was obtained (retry later); a denial is `Ok`.
    pub async fn approve(&self, intent: PaymentIntent) -> Result<Decision, String> {
        let meta = self.current()?;
        let r = ractor::call_t!(meta, MetaMsg::ApprovePaymentIntent, self.timeout.as_millis() as u64, intent);
        let decision = r.map_err(|e| format!("MetaAgent unreachable: {e}"))?;
        // Recorded on the caller's span: the task's trace shows every payment decision.
        if let Ok(d) = &decision {
            tracing::info!(
                mandate = %d.mandate_id,
                vendor = %d.vendor,
                amount_cents = d.amount_cents,
                outcome = ?d.outcome,
                code = %d.code,
                reason = %d.reason,
                "payment decision"
            );
        }
        decision
    }

    pub async fn capture(&self, mandate: String) -> Result<Settled, String> {
        let meta = self.current()?;
        ractor::call_t!(meta, MetaMsg::Capture, self.timeout.as_millis() as u64, mandate)
            .map_err(|e| format!("MetaAgent unreachable: {e}"))?
    }

    /// Settle every open reservation of `task` (see [`super::settlement`]).
    pub async fn settle_task(&self, tenant: TenantId, task: TaskId, to: Settle) -> Result<TaskSettled, String> {
        let meta = self.current()?;
        ractor::call_t!(meta, MetaMsg::SettleTask, self.timeout.as_millis() as u64, tenant, task, to)
            .map_err(|e| format!("MetaAgent unreachable: {e}"))?
    }

    pub async fn release(&self, mandate: String) -> Result<Settled, String> {
        let meta = self.current()?;
        ractor::call_t!(meta, MetaMsg::Release, self.timeout.as_millis() as u64, mandate)
            .map_err(|e| format!("MetaAgent unreachable: {e}"))?
    }
}
