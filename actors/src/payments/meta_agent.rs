//! The MetaAgent: the actor through which agents ask for money. It answers `ApprovePaymentIntent` by
//! message (RPC) and releases expired reservations on a timer. It holds no state of its own — the
//! ledger does — so a crash loses nothing: its supervisor restarts it and the next ask goes through.
//!
//! Each request is decided on its own task, so one slow Redis round trip does not queue the others;
//! the atomicity lives in the ledger, not in the actor's mailbox.

use super::authority::Authority;
use super::ledger::{Settle, Settled};
use super::types::{Decision, PaymentIntent};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub enum MetaMsg {
    ApprovePaymentIntent(PaymentIntent, RpcReplyPort<Result<Decision, String>>),
    Capture(String, RpcReplyPort<Result<Settled, String>>),
    Release(String, RpcReplyPort<Result<Settled, String>>),
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

/// How executors reach the MetaAgent. It follows restarts: the root updates the reference.
#[derive(Clone)]
pub struct PaymentsClient {
    meta: Arc<RwLock<Option<ActorRef<MetaMsg>>>>,
    timeout: Duration,
}

impl Default for PaymentsClient {
    fn default() -> Self {
        PaymentsClient::new(Duration::from_secs(10))
    }
}

impl std::fmt::Debug for PaymentsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connected = self.meta.read().map(|g| g.is_some()).unwrap_or(false);
        f.debug_struct("PaymentsClient").field("connected", &connected).finish()
    }
}

impl PaymentsClient {
    pub fn new(timeout: Duration) -> Self {
        PaymentsClient { meta: Arc::default(), timeout }
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

    pub async fn release(&self, mandate: String) -> Result<Settled, String> {
        let meta = self.current()?;
        ractor::call_t!(meta, MetaMsg::Release, self.timeout.as_millis() as u64, mandate)
            .map_err(|e| format!("MetaAgent unreachable: {e}"))?
    }
}
