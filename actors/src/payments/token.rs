//! Task-bound payment tokens: how an outside agent (a2a, http, process) proves which task it is paying
//! for, so that it can ask the MetaAgent for money as that task's agent and no one else.
//!
//! A token is `<version>.<claims>.<tag>`: `claims` is the base64url (no padding) JSON of [`Claims`]
//! (task, agent, business, tenant, expiry, and the workflow budget of a workflow step), `tag` the
//! base64url HMAC-SHA256 of `<version>.<claims>` under the cluster's [`TokenKey`]. The claims are
//! readable, not secret; the tag makes them unforgeable without the key. [`verify`] checks the tag in
//! constant time before it even decodes the claims, then the expiry. A token is a bearer credential:
//! it is never logged.
//!
//! Versions: `v1` has no workflow; `v2` binds the workflow id and budget its task's payments count
//! toward, so an outside agent cannot spend outside its workflow's budget. A token is `v2` only when it
//! has a workflow: every other token is exactly the `v1` it always was, so nodes of the previous
//! version still verify it during a rolling upgrade, and `v1` tokens they made still verify here. A
//! `v1` token claiming a workflow is malformed (the version is signed too, so it cannot be relabelled).
//!
//! Every node of a cluster must share the key (`payments.token_key_file` or
//! `GENESIS_PAYMENT_TOKEN_KEY`): a task's token is made by the node that runs the task and checked by
//! whichever node the agent's request reaches.

use super::types::WorkflowBudget;
use crate::task::TaskId;
use crate::tenant::TenantId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;

/// The shortest key accepted, in bytes (the size of the HMAC-SHA256 tag: a shorter key is weaker).
pub const MIN_KEY_BYTES: usize = 32;

/// The longest token accepted, in characters: far above any real one (ids are ≤ 128 characters),
/// so that a huge header is refused before any work.
pub const MAX_TOKEN_LEN: usize = 2048;

/// How long a token outlives its attempt's deadline: the cancel grace, plus room for clock skew
/// between the node that made it and the node that checks it.
pub const EXPIRY_MARGIN_MS: u64 = 60_000;

/// Tokens without a workflow.
const V1: &str = "v1";
/// Tokens that bind a workflow budget.
const V2: &str = "v2";

/// The key tokens are signed with. `Debug` never shows it; clones share one copy.
#[derive(Clone)]
pub struct TokenKey(Arc<SecretSlice<u8>>);

/// Why bytes are not a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("holds {len} bytes; a payment token key must be at least {MIN_KEY_BYTES} random bytes")]
pub struct KeyTooShort {
    pub len: usize,
}

impl TokenKey {
    /// The key made of exactly these bytes (at least [`MIN_KEY_BYTES`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyTooShort> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort { len: bytes.len() });
        }
        Ok(TokenKey(Arc::new(SecretSlice::from(bytes))))
    }

    /// A fresh random key for this process only (from the thread-local CSPRNG, seeded by the OS).
    pub fn random() -> Self {
        TokenKey(Arc::new(SecretSlice::from(rand::random::<[u8; 32]>().to_vec())))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length, so this cannot fail; the fallback keeps it total.
        <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose_secret())
            .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()))
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([REDACTED])")
    }
}

impl PartialEq for TokenKey {
    /// For comparing configurations only (not constant-time; never used to check a token).
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

/// What a token says: the one task, agent, business and tenant it may spend for, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    #[serde(rename = "tsk")]
    pub task_id: TaskId,
    #[serde(rename = "agt")]
    pub agent: String,
    #[serde(rename = "biz")]
    pub business: String,
    #[serde(rename = "ten")]
    pub tenant: TenantId,
    /// Expiry, ms since the Unix epoch: the token is refused from this instant on.
    #[serde(rename = "exp")]
    pub expires_at_ms: u64,
    /// The workflow budget the task's payments count toward (a `v2` token), if it is a workflow step
    /// with a budget.
    #[serde(rename = "wf", default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowBudget>,
}

/// Why a token was refused. The messages never quote the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the payment token is not a Genesis payment token (expected v1 or v2.<claims>.<signature>)")]
    Malformed,
    #[error("the payment token's signature does not match: it was altered, or made with another key")]
    BadSignature,
    #[error("the payment token has expired (it lives until its task's deadline, plus a margin)")]
    Expired,
}

/// The token for `claims`, signed with `key`.
pub fn sign(key: &TokenKey, claims: &Claims) -> String {
    // Serializing a struct of strings and numbers cannot fail; an empty body would not verify.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let version = if claims.workflow.is_some() { V2 } else { V1 };
    let signed = format!("{version}.{}", URL_SAFE_NO_PAD.encode(json));
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{tag}")
}

/// The claims of `token` if `key` signed it and it has not expired at `now_ms`. The tag is checked
/// first, in constant time, over the text as received: nothing of an unsigned token is decoded.
pub fn verify(key: &TokenKey, token: &str, now_ms: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (version, body) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    if (version != V1 && version != V2) || body.contains('.') {
        return Err(TokenError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
    let mut mac = key.mac();
    mac.update(signed.as_bytes());
    mac.verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if version == V1 && claims.workflow.is_some() {
        return Err(TokenError::Malformed);
    }
    if now_ms >= claims.expires_at_ms {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// When a token for an attempt with this deadline expires.
pub fn expiry_for(deadline_ms: u64) -> u64 {
    deadline_ms.saturating_add(EXPIRY_MARGIN_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_709_164_800_000;

    fn key(b: u8) -> TokenKey {
        TokenKey::from_bytes(vec![b; 32]).expect("key")
    }

    fn claims() -> Claims {
        Claims {
            task_id: TaskId::generate(),
            agent: "genesis.commerce".into(),
            business: "biz-1".into(),
            tenant: TenantId::parse("tenant-1").expect("tenant"),
            expires_at_ms: NOW + 1000,
            workflow: None,
        }
    }

    fn workflow_claims() -> Claims {
        Claims { workflow: Some(WorkflowBudget { id: "wf-1".into(), budget_cents: 1000 }), ..claims() }
    }

    /// `v<n>.<claims>.<tag>` made by hand, as the code of that version signs.
    fn by_hand(k: &TokenKey, version: &str, json: &[u8]) -> String {
        let signed = format!("{version}.{}", URL_SAFE_NO_PAD.encode(json));
        let mut mac = k.mac();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_workflow_step_gets_a_v2_token_and_every_other_task_the_v1_it_always_had() {
        let k = key(7);
        let w = workflow_claims();
        let t = sign(&k, &w);
        assert!(t.starts_with("v2."), "{t}");
        assert_eq!(verify(&k, &t, NOW), Ok(w.clone()));
        // A token of the previous version (its claims had no `wf`), as its code made it: still valid,
        // and a token without a workflow is still made exactly that way.
        let c = claims();
        let old = format!(
            r#"{{"tsk":"{}","agt":"{}","biz":"{}","ten":"{}","exp":{}}}"#,
            c.task_id, c.agent, c.business, c.tenant, c.expires_at_ms
        );
        let old = by_hand(&k, "v1", old.as_bytes());
        assert_eq!(verify(&k, &old, NOW), Ok(c.clone()));
        assert_eq!(sign(&k, &c), old);
        // Relabelled as v1 (to drop the workflow for an older node), it no longer matches its tag;
        // and a v1 token that claims a workflow is not one this code makes.
        let relabelled = t.replacen("v2.", "v1.", 1);
        assert_eq!(verify(&k, &relabelled, NOW), Err(TokenError::BadSignature));
        let v1_with_workflow = by_hand(&k, "v1", &serde_json::to_vec(&w).expect("json"));
        assert_eq!(verify(&k, &v1_with_workflow, NOW), Err(TokenError::Malformed));
        // A v2 token's workflow cannot be dropped or changed under its tag.
        let tag = t.rsplit_once('.').map(|(_, t)| t).unwrap_or_default();
        for other in
            [claims(), Claims { workflow: Some(WorkflowBudget { id: "wf-1".into(), budget_cents: 9999 }), ..claims() }]
        {
            let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).expect("json"));
            assert_eq!(verify(&k, &format!("v2.{body}.{tag}"), NOW), Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let c = claims();
        let t = sign(&key(7), &c);
        assert!(t.starts_with("v1.") && t.split('.').count() == 3, "{t}");
        assert_eq!(verify(&key(7), &t, NOW), Ok(c.clone()));
        assert_eq!(verify(&key(7), &t, NOW + 999), Ok(c));
        assert_eq!(verify(&key(7), &t, NOW + 1000), Err(TokenError::Expired));
    }

    #[test]
    fn another_key_or_garbage_is_refused() {
        let t = sign(&key(7), &claims());
        assert_eq!(verify(&key(8), &t, NOW), Err(TokenError::BadSignature));
        for bad in ["", "v1", "v1.", "v1..", "v2.abc.def", "v1.a.b.c", "v1.abc.!!!", &"a".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(verify(&key(7), bad, NOW).is_err(), "{bad:?}");
        }
        // Well-formed and signed, but claims that do not parse: malformed, not accepted.
        for version in ["v1", "v2"] {
            let forged = by_hand(&key(7), version, br#"{"agt":"x"}"#);
            assert_eq!(verify(&key(7), &forged, NOW), Err(TokenError::Malformed));
        }
        assert_eq!(
            verify(&key(7), &by_hand(&key(7), "v3", &serde_json::to_vec(&claims()).expect("json")), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn short_keys_are_refused_and_random_keys_differ() {
        assert_eq!(TokenKey::from_bytes(vec![1; 31]).map(|_| ()), Err(KeyTooShort { len: 31 }));
        assert_ne!(TokenKey::random(), TokenKey::random());
        assert_eq!(format!("{:?}", key(7)), "TokenKey([REDACTED])");
    }

    /// Each field a forger might want to change, changed.
    fn tampered(c: &Claims, field: usize, s: &str) -> Claims {
        let mut t = c.clone();
        match field {
            0 => t.task_id = TaskId::generate(),
            1 => t.agent = format!("{}{s}", t.agent),
            2 => t.business = format!("{}{s}", t.business),
            3 => t.tenant = TenantId::parse(&format!("{}{s}", t.tenant)).expect("tenant"),
            4 => t.expires_at_ms += 1 + s.len() as u64,
            _ => match &mut t.workflow {
                Some(w) => w.budget_cents += 1 + s.len() as u64,
                None => t.workflow = Some(WorkflowBudget { id: s.to_string(), budget_cents: 1 }),
            },
        }
        t
    }

    proptest! {
        /// Claims re-encoded with any field changed, under the original tag, never verify; nor does
        /// the token with any one character changed.
        #[test]
        fn tampering_with_any_field_or_character_is_refused(
            field in 0usize..6,
            in_workflow in any::<bool>(),
            suffix in "[a-z0-9]{1,8}",
            pos in any::<prop::sample::Index>(),
            with in prop::sample::select(vec!['A', 'z', '0', '-', '_', '.']),
        ) {
            let k = key(42);
            let c = if in_workflow { workflow_claims() } else { claims() };
            let token = sign(&k, &c);
            let tag = token.rsplit_once('.').map(|(_, t)| t).unwrap_or_default();
            let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&tampered(&c, field, &suffix)).expect("json"));
            let version = token.split_once('.').map(|(v, _)| v).unwrap_or_default();
            let forged = format!("{version}.{body}.{tag}");
            prop_assert_eq!(verify(&k, &forged, NOW), Err(TokenError::BadSignature));

            let mut chars: Vec<char> = token.chars().collect();
            let i = pos.index(chars.len());
            if chars[i] != with {
                chars[i] = with;
                let changed: String = chars.into_iter().collect();
                // The tag covers the claims as text, and the decoder refuses non-canonical base64 (spare
                // bits set), so no changed character decodes to an accepted token.
                prop_assert!(verify(&k, &changed, NOW).is_err(), "{}", changed);
            }
        }

        /// Whatever the claims, what is signed verifies to exactly those claims.
        #[test]
        fn any_claims_round_trip(
            agent in "[a-z.]{1,40}",
            business in "[A-Za-z0-9:._-]{1,64}",
            exp in NOW + 1..u64::MAX,
            workflow in prop::option::of(("[A-Za-z0-9:._-]{1,128}", any::<u64>())),
        ) {
            let workflow = workflow.map(|(id, budget_cents)| WorkflowBudget { id, budget_cents });
            let c = Claims { agent, business, expires_at_ms: exp, workflow, ..claims() };
            prop_assert_eq!(verify(&key(1), &sign(&key(1), &c), NOW), Ok(c));
        }
    }
}
