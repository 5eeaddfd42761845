//! API keys: who may call a node's HTTP API, and for which tenant.
//!
//! A key is `gk_<id>_<secret>`: a 12-hex-digit id (how a key is listed, revoked and found) and 256
//! random bits of secret (64 hex digits). It is shown once, when it is made ([`issue`]); what is kept
//! is its record ([`ApiKey`]): id, tenant, role, times, and the SHA-256 of the whole key. A key that is
//! presented is found by its id and accepted when the SHA-256 of what was presented equals the stored
//! one, compared in constant time ([`KeyHash::matches`]).
//!
//! Why a plain SHA-256 and not a password hash (argon2, bcrypt): the secret is 256 random bits, not a
//! human's password; nobody can search that space, so a slow hash would only slow every request.
//!
//! Records live in a [`KeyStore`] that goes with the bus, as the workflow store does: on Redis
//! ([`redis::RedisKeys`], every key under the one `{apikeys}` hash tag) and in memory
//! ([`memory::MemoryKeys`], the in-process bus's companion; not durable).

pub mod memory;
pub mod redis;
mod scripts;

use crate::bus::Bus;
use crate::secret::Secret;
use crate::tenant::TenantId;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// What every key starts with: it tells a Genesis key from a payment token or another service's key
/// (in a log excerpt, a secret scanner's rule).
pub const PREFIX: &str = "gk_";
/// Hex digits of a key id.
const ID_LEN: usize = 12;
/// Hex digits of a key's secret (32 bytes).
const SECRET_LEN: usize = 64;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and acts only on its own tenant's tasks and workflows.
    Tenant,
    /// Sees every tenant's, and may act for any tenant (by naming it).
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "tenant" => Some(Role::Tenant),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Tenant => "tenant",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| format!("role {s:?}: must be \"tenant\" or \"admin\""))
    }
}

/// A key's id: 1 to 32 lowercase letters and digits (issued keys have 12 hex digits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(raw: &str) -> Result<KeyId, String> {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        if raw.is_empty() || raw.len() > 32 || !raw.chars().all(ok) {
            return Err(format!(
                "key id {raw:?}: an id is 1 to 32 lowercase letters and digits, as `apikey list` shows it"
            ));
        }
        Ok(KeyId(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 of a whole key, as stored and as written in `[[http.api_keys]] key_sha256`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash of a presented key (its exact bytes; nothing is trimmed here).
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// 64 hex digits (either case).
    pub fn from_hex(hex: &str) -> Option<KeyHash> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(KeyHash(out))
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Equal, compared in constant time: how long the comparison takes says nothing about how many
    /// leading bytes matched (docs/design.md, "API keys").
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key's record: everything but the secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub tenant: TenantId,
    pub role: Role,
    /// ms since the Unix epoch.
    pub created_at: u64,
    /// When it was revoked (ms since the Unix epoch); a revoked key is refused.
    pub revoked_at: Option<u64>,
    #[serde(skip)]
    pub sha256: KeyHash,
}

/// A key just made: the only moment its secret exists outside the caller's hands.
pub struct IssuedKey {
    pub key: Secret,
    pub record: ApiKey,
}

/// Make a new key for `tenant` with `role` (nothing is stored: see [`KeyStore::create`]).
pub fn issue(tenant: TenantId, role: Role, now_ms: u64) -> IssuedKey {
    let id = hex(&rand::random::<[u8; ID_LEN / 2]>());
    let secret = hex(&rand::random::<[u8; SECRET_LEN / 2]>());
    let key = format!("{PREFIX}{id}_{secret}");
    let record =
        ApiKey { id: KeyId(id), tenant, role, created_at: now_ms, revoked_at: None, sha256: KeyHash::of(&key) };
    IssuedKey { key: key.into(), record }
}

/// The id of a presented key in the issued form `gk_<id>_<secret>`; `None` for anything else.
pub fn id_of(presented: &str) -> Option<KeyId> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexdigits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexdigits(id, ID_LEN) && hexdigits(secret, SECRET_LEN)).then(|| KeyId(id.to_ascii_lowercase()))
}

/// What a presented key turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Verified {
    Valid(ApiKey),
    /// The right secret of a key that was revoked.
    Revoked(ApiKey),
    /// Not of the issued form, no such id, or the secret does not match.
    Unknown,
}

/// What [`KeyStore::revoke`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Revoked {
    Now(ApiKey),
    /// It had been revoked before (at its `revoked_at`): nothing changed.
    Already(ApiKey),
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("API keys: redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A stored record that does not parse (written by hand, or by another version).
    #[error("API keys: stored key {id} is unreadable: {problem}")]
    Corrupt { id: String, problem: String },
    /// [`KeyStore::create`] found the id taken (a 48-bit collision, or a record written twice).
    #[error("API keys: key id {0} exists already")]
    Exists(KeyId),
}

/// The key store; cheap to clone.
#[derive(Clone)]
pub enum KeyStore {
    Redis(redis::RedisKeys),
    Memory(memory::MemoryKeys),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            KeyStore::Redis($s) => $e,
            KeyStore::Memory($s) => $e,
        }
    };
}

impl KeyStore {
    /// The store that goes with `bus`: the same Redis, or the in-process bus's own keys.
    pub fn for_bus(bus: &Bus) -> KeyStore {
        match bus {
            Bus::Redis(b) => KeyStore::Redis(redis::RedisKeys::new(b.shared_conn())),
            Bus::Memory(b) => KeyStore::Memory(b.api_keys()),
        }
    }

    /// Store a new record; [`KeyStoreError::Exists`] if its id is taken.
    pub async fn create(&self, key: &ApiKey) -> Result<(), KeyStoreError> {
        dispatch!(self, s => s.create(key).await)
    }

    pub async fn get(&self, id: &KeyId) -> Result<Option<ApiKey>, KeyStoreError> {
        dispatch!(self, s => s.get(id).await)
    }

    /// Every record, oldest first (revoked ones too: they are kept, refused).
    pub async fn list(&self) -> Result<Vec<ApiKey>, KeyStoreError> {
        dispatch!(self, s => s.list().await)
    }

    pub async fn revoke(&self, id: &KeyId, now_ms: u64) -> Result<Revoked, KeyStoreError> {
        dispatch!(self, s => s.revoke(id, now_ms).await)
    }

    /// Check a presented key: found by its id, its hash compared in constant time.
    pub async fn verify(&self, presented: &str) -> Result<Verified, KeyStoreError> {
        let Some(id) = id_of(presented) else { return Ok(Verified::Unknown) };
        let Some(record) = self.get(&id).await? else { return Ok(Verified::Unknown) };
        Ok(judge(record, &KeyHash::of(presented)))
    }
}

/// A record against the hash of what was presented.
fn judge(record: ApiKey, presented: &KeyHash) -> Verified {
    if !record.sha256.matches(presented) {
        Verified::Unknown
    } else if record.revoked_at.is_some() {
        Verified::Revoked(record)
    } else {
        Verified::Valid(record)
    }
}

#[cfg(test)]
mod tests;
