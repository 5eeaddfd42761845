//! The tenant id: one type for every place a tenant enters (task submission over HTTP and the CLI, a
//! stored task envelope, a payment intent, `--tenant` flags), so a tenant the task API accepts is one
//! the payment ledger accepts too.
//!
//! The rule is the ledger's, because a tenant id becomes part of Redis key names: 1..=128 characters of
//! `[A-Za-z0-9:._-]`. In particular no `{` or `}`: the ledger shards by the hash tag `{pay:<tenant>}`,
//! and a brace inside the id would move the tag (and with it the slot) of the tenant's keys.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The tenant of a task or payment intent that names none (the CLI's and the HTTP API's default).
pub const DEFAULT_TENANT: &str = "default";

/// Longest tenant id, in bytes (= characters: the id is ASCII).
pub const MAX_TENANT_LEN: usize = 128;

/// A tenant id that follows the rule (see the module docs). Built only by [`TenantId::parse`] (or
/// serde, which calls it), so holding one means it is valid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// Why a string is not a tenant id. The message states the rule and shows (the start of) the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant id {shown:?} is not valid: a tenant id is 1 to {MAX_TENANT_LEN} characters of letters, digits, ':', '.', '_' and '-' (no spaces or braces)")]
pub struct TenantIdError {
    shown: String,
}

impl TenantId {
    pub fn parse(raw: &str) -> Result<TenantId, TenantIdError> {
        let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-');
        if raw.is_empty() || raw.len() > MAX_TENANT_LEN || !raw.bytes().all(valid) {
            return Err(TenantIdError { shown: raw.chars().take(64).collect() });
        }
        Ok(TenantId(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    /// [`DEFAULT_TENANT`].
    fn default() -> Self {
        TenantId(DEFAULT_TENANT.to_owned())
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::parse(s)
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenantIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TenantId::parse(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in ["default", "tenant-1", "acme:eu.prod_2", "A", &"x".repeat(128)] {
            assert_eq!(TenantId::parse(ok).map(|t| t.as_str().to_owned()), Ok(ok.to_owned()), "{ok}");
        }
        for bad in ["", " ", "a b", "{pay:x}", "a}b", "a{", "é", "a/b", "a\n", &"x".repeat(129)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = TenantId::parse("acme{eu}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("\"acme{eu}\"") && e.contains("1 to 128") && e.contains("no spaces or braces"), "{e}");
        assert_eq!(TenantId::default().as_str(), DEFAULT_TENANT);
    }

    #[test]
    fn serde_validates() {
        let t: Result<TenantId, _> = serde_json::from_str("\"tenant-1\"");
        assert_eq!(t.ok().map(String::from).as_deref(), Some("tenant-1"));
        let bad: Result<TenantId, _> = serde_json::from_str("\"a{b}\"");
        assert!(bad.is_err_and(|e| e.to_string().contains("tenant id")));
        assert_eq!(serde_json::to_string(&TenantId::default()).ok().as_deref(), Some("\"default\""));
    }
}
