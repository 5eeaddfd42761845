//! The workflow store's Lua scripts (`lua/*.lua`, each after `lua/prelude.lua`) and one argument
//! struct per script (see [`crate::connection::script`]); the test below checks that each struct
//! pushes what its script declares.

use super::keys;
use crate::connection::script::{LuaScript, ScriptArgs, Sink};
use crate::workflow::state::Workflow;

const PRELUDE: &str = include_str!("lua/prelude.lua");

pub struct Scripts {
    pub create: LuaScript,
    pub save: LuaScript,
    pub prune: LuaScript,
    pub release: LuaScript,
}

impl Scripts {
    pub fn load() -> Self {
        Scripts {
            create: LuaScript::new("workflow_create", &[PRELUDE, include_str!("lua/create.lua")]),
            save: LuaScript::new("workflow_save", &[PRELUDE, include_str!("lua/save.lua")]),
            prune: LuaScript::new("workflow_prune", &[PRELUDE, include_str!("lua/prune.lua")]),
            // Its own KEYS (the lease only): without the prelude's layout.
            release: LuaScript::new("workflow_release", &[include_str!("lua/release.lua")]),
        }
    }
}

/// Where one workflow sits in the indexes, as every script gets it.
struct Placement<'a> {
    wf: &'a Workflow,
}

impl Placement<'_> {
    fn keys<S: Sink>(&self, to: &mut S) {
        for k in keys::script_keys(&self.wf.id, &self.wf.tenant_id) {
            to.key(k);
        }
    }

    /// status_index, id, expiring member, created_at, final, retention_ms. `final` is
    /// [`Workflow::settled`]: an ended workflow with effects left stays open for the sweeper.
    fn args<S: Sink>(&self, to: &mut S, retention_ms: u64) {
        let wf = self.wf;
        to.arg(keys::status_index(wf.status)).arg(&wf.id).arg(keys::expiring_member(&wf.id, &wf.tenant_id));
        to.arg(wf.created_at).arg(if wf.settled() { "1" } else { "0" }).arg(retention_ms.max(1));
    }
}

/// `create.lua`.
pub struct CreateArgs<'a> {
    pub wf: &'a Workflow,
    pub doc: &'a str,
    pub retention_ms: u64,
}

impl ScriptArgs for CreateArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let p = Placement { wf: self.wf };
        p.keys(to);
        to.arg(self.doc);
        p.args(to, self.retention_ms);
    }
}

/// `save.lua`.
pub struct SaveArgs<'a> {
    pub wf: &'a Workflow,
    pub doc: &'a str,
    pub expected: u64,
    pub retention_ms: u64,
}

impl ScriptArgs for SaveArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let p = Placement { wf: self.wf };
        p.keys(to);
        to.arg(self.expected).arg(self.doc);
        p.args(to, self.retention_ms);
    }
}

/// `prune.lua`: one expired workflow, named by its `expiring` member.
pub struct PruneArgs<'a> {
    pub id: &'a str,
    pub tenant: &'a crate::tenant::TenantId,
}

impl ScriptArgs for PruneArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        for k in keys::script_keys(self.id, self.tenant) {
            to.key(k);
        }
        to.arg(self.id).arg(keys::expiring_member(self.id, self.tenant));
    }
}

/// `release.lua`.
pub struct ReleaseArgs<'a> {
    pub id: &'a str,
    pub token: &'a str,
}

impl ScriptArgs for ReleaseArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::lease(self.id)).arg(self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::script::{declared, pushed};
    use crate::payments::ledger::keys::hash_tag;
    use crate::workflow::machine::{create, Start};
    use crate::workflow::plan::Plan;
    use crate::workflow::route::Route;

    fn wf() -> Workflow {
        let plan = Plan::from_json(&serde_json::json!({"steps": [{"id": "a", "agent": "x"}]})).expect("plan");
        let start = Start {
            id: "w1".into(),
            tenant_id: crate::tenant::TenantId::parse("t:1").expect("tenant"),
            business_id: "b".into(),
            correlation_id: "c".into(),
            template: None,
            projected_revenue_cents: None,
            now: 1,
        };
        create(&plan, vec![Route { agent: "x".into(), reason: "r".into() }], start)
    }

    fn check(script: &LuaScript, args: &impl ScriptArgs) {
        let prelude_keys = declared(PRELUDE, "NKEYS").expect("prelude declares NKEYS");
        let argv = declared(script.source(), "NARGV").expect("script declares NARGV");
        assert_eq!(pushed(args), (prelude_keys, argv), "{}", script.name());
    }

    #[test]
    fn every_struct_pushes_what_its_script_declares() {
        let s = Scripts::load();
        let w = wf();
        check(&s.create, &CreateArgs { wf: &w, doc: "{}", retention_ms: 1 });
        check(&s.save, &SaveArgs { wf: &w, doc: "{}", expected: 1, retention_ms: 1 });
        check(&s.prune, &PruneArgs { id: &w.id, tenant: &w.tenant_id });
        let release = ReleaseArgs { id: &w.id, token: "t" };
        assert_eq!(pushed(&release), crate::connection::script::declared_pair(&s.release, "NKEYS", "NARGV"));
    }

    #[test]
    fn every_key_shares_the_one_tag() {
        let w = wf();
        let mut all = keys::script_keys(&w.id, &w.tenant_id);
        all.push(keys::events());
        all.push(keys::lease(&w.id));
        for k in all {
            assert_eq!(hash_tag(&k), "wf", "{k}");
        }
    }
}
