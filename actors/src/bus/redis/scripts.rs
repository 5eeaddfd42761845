//! The bus's Lua scripts (`lua/*.lua`), each with the shared prelude (`lua/prelude.lua`). Their
//! arguments are the typed structs of [`super::args`]; see [`crate::connection::script`] for how the
//! two are kept in step.

use crate::connection::script::LuaScript;

const PRELUDE: &str = include_str!("lua/prelude.lua");

pub struct Scripts {
    pub publish: LuaScript,
    pub begin: LuaScript,
    pub complete_many: LuaScript,
    pub redeliver: LuaScript,
    pub read_pending: LuaScript,
    pub reclaim: LuaScript,
    pub move_due: LuaScript,
    pub trim: LuaScript,
    pub dlq_replay: LuaScript,
    pub dlq_trim: LuaScript,
    /// The node-id lease: write it, give it back.
    pub heartbeat: LuaScript,
    pub release: LuaScript,
    pub progress: LuaScript,
    pub cancel: LuaScript,
    pub rate: LuaScript,
}

macro_rules! bus_script {
    ($name:literal) => {
        LuaScript::new($name, &[PRELUDE, include_str!(concat!("lua/", $name, ".lua"))])
    };
}

impl Scripts {
    pub fn load() -> Self {
        Scripts {
            publish: bus_script!("publish"),
            begin: bus_script!("begin"),
            complete_many: bus_script!("complete_many"),
            redeliver: bus_script!("redeliver"),
            read_pending: bus_script!("read_pending"),
            reclaim: bus_script!("reclaim"),
            move_due: bus_script!("move_due"),
            trim: bus_script!("trim"),
            dlq_replay: bus_script!("dlq_replay"),
            dlq_trim: bus_script!("dlq_trim"),
            heartbeat: bus_script!("heartbeat"),
            release: bus_script!("release"),
            progress: bus_script!("progress"),
            cancel: bus_script!("cancel"),
            rate: bus_script!("rate"),
        }
    }
}
