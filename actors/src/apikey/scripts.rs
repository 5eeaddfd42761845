//! The key store's Lua scripts (`lua/*.lua`) and one argument struct each (see
//! [`crate::connection::script`]); the test checks that each struct pushes what its script declares.

use super::{redis::keys, ApiKey, KeyId};
use crate::connection::script::{LuaScript, ScriptArgs, Sink};

pub struct Scripts {
    pub create: LuaScript,
    pub revoke: LuaScript,
}

impl Scripts {
    pub fn load() -> Self {
        Scripts {
            create: LuaScript::new("apikey_create", &[include_str!("lua/create.lua")]),
            revoke: LuaScript::new("apikey_revoke", &[include_str!("lua/revoke.lua")]),
        }
    }
}

/// `create.lua`.
pub struct CreateArgs<'a> {
    pub key: &'a ApiKey,
}

impl ScriptArgs for CreateArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let k = self.key;
        to.key(keys::record(&k.id)).key(keys::index());
        to.arg(k.sha256.to_hex()).arg(k.tenant.as_str()).arg(k.role.as_str()).arg(k.created_at).arg(k.id.as_str());
    }
}

/// `revoke.lua`.
pub struct RevokeArgs<'a> {
    pub id: &'a KeyId,
    pub now_ms: u64,
}

impl ScriptArgs for RevokeArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::record(self.id)).arg(self.now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::script::{declared_pair, pushed};
    use crate::payments::ledger::keys::hash_tag;

    #[test]
    fn every_struct_pushes_what_its_script_declares() {
        let s = Scripts::load();
        let issued = super::super::issue(crate::tenant::TenantId::default(), super::super::Role::Tenant, 1);
        let create = CreateArgs { key: &issued.record };
        assert_eq!(pushed(&create), declared_pair(&s.create, "NKEYS", "NARGV"));
        let revoke = RevokeArgs { id: &issued.record.id, now_ms: 2 };
        assert_eq!(pushed(&revoke), declared_pair(&s.revoke, "NKEYS", "NARGV"));
        for k in [keys::record(&issued.record.id), keys::index()] {
            assert_eq!(hash_tag(&k), "apikeys", "{k}");
        }
    }
}
