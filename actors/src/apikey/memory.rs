//! API keys in memory: the in-process bus's companion (every handle of one bus shares them), with the
//! semantics of [`super::redis::RedisKeys`]. Not durable: keys made here end with the process.

use super::{ApiKey, KeyId, KeyStoreError, Revoked};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct MemoryKeys {
    keys: Arc<Mutex<BTreeMap<KeyId, ApiKey>>>,
}

impl MemoryKeys {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<KeyId, ApiKey>) -> T) -> T {
        // A panic elsewhere while holding the lock leaves the map as it was: keep using it.
        let mut keys = self.keys.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut keys)
    }

    pub async fn create(&self, key: &ApiKey) -> Result<(), KeyStoreError> {
        self.with(|keys| {
            if keys.contains_key(&key.id) {
                return Err(KeyStoreError::Exists(key.id.clone()));
            }
            keys.insert(key.id.clone(), key.clone());
            Ok(())
        })
    }

    pub async fn get(&self, id: &KeyId) -> Result<Option<ApiKey>, KeyStoreError> {
        Ok(self.with(|keys| keys.get(id).cloned()))
    }

    pub async fn list(&self) -> Result<Vec<ApiKey>, KeyStoreError> {
        let mut all: Vec<ApiKey> = self.with(|keys| keys.values().cloned().collect());
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    pub async fn revoke(&self, id: &KeyId, now_ms: u64) -> Result<Revoked, KeyStoreError> {
        Ok(self.with(|keys| match keys.get_mut(id) {
            None => Revoked::Unknown,
            Some(k) if k.revoked_at.is_some() => Revoked::Already(k.clone()),
            Some(k) => {
                k.revoked_at = Some(now_ms);
                Revoked::Now(k.clone())
            }
        }))
    }
}
