//! The one Redis-script loader, for the bus and the ledger alike.
//!
//! Scripts are `.lua` files beside the code that calls them, compiled in with `include_str!`. Each
//! script states the shape of its KEYS and ARGV as `local` constants (`NKEYS`/`NARGV`, or
//! `HEAD_KEYS`/`HEAD_ARGV`/`ITEM_KEYS`/`ITEM_ARGV` for a batched script) and checks it before doing
//! anything (`lua/arity.lua`, prepended to every script). On the Rust side, the arguments of a call are
//! one struct per script implementing [`ScriptArgs`]: it pushes its fields in the order the script reads
//! them, so no caller counts positions by hand, and a unit test per struct ([`pushed`] against
//! [`declared`]) checks that the struct pushes exactly what the script declares.
//!
//! Calls go through `redis::Script`, which sends EVALSHA and falls back to loading the script, so a
//! restarted Redis with an empty script cache is handled.

use redis::{Script, ScriptInvocation, ToRedisArgs};

const ARITY: &str = include_str!("lua/arity.lua");

/// A loaded script: its name (for messages), its full source and the `redis::Script` that runs it.
pub struct LuaScript {
    name: &'static str,
    source: String,
    script: Script,
}

impl LuaScript {
    /// The shared arity helpers, then `parts` in order (e.g. a prelude and the script's body).
    pub fn new(name: &'static str, parts: &[&str]) -> Self {
        let mut source = String::from(ARITY);
        for p in parts {
            source.push('\n');
            source.push_str(p);
        }
        let script = Script::new(&source);
        LuaScript { name, source, script }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// An empty invocation, for batched calls that push a head and then items.
    pub fn prepare(&self) -> ScriptInvocation<'_> {
        self.script.prepare_invoke()
    }

    /// An invocation with `args` pushed.
    pub fn call(&self, args: &impl ScriptArgs) -> ScriptInvocation<'_> {
        let mut inv = self.script.prepare_invoke();
        args.push(&mut inv);
        inv
    }
}

/// Where a script's KEYS and ARGV go: an invocation, or a [`Tally`] in tests.
pub trait Sink {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self;
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self;
}

impl Sink for ScriptInvocation<'_> {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        ScriptInvocation::key(self, key)
    }
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        ScriptInvocation::arg(self, arg)
    }
}

/// The arguments of one script call, or of one part (head or item) of a batched call.
pub trait ScriptArgs {
    /// Push KEYS and ARGV in the order the script reads them.
    fn push<S: Sink>(&self, to: &mut S);
}

/// Counts what is pushed, encoding values exactly as an invocation would (a value that expands to
/// several arguments counts as several).
#[derive(Debug, Default)]
pub struct Tally {
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Sink for Tally {
    fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }
}

/// How many KEYS and ARGV `args` pushes.
pub fn pushed(args: &impl ScriptArgs) -> (usize, usize) {
    let mut t = Tally::default();
    args.push(&mut t);
    (t.keys.len(), t.args.len())
}

/// The value of a `local NAME = <integer>` line of a script's source: how the scripts declare their
/// arity, read back by the arity tests.
pub fn declared(source: &str, name: &str) -> Option<usize> {
    let prefix = format!("local {name} = ");
    source.lines().find_map(|l| l.trim().strip_prefix(prefix.as_str())).and_then(|v| {
        let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// `(KEYS, ARGV)` a script declares under the constant names `keys` and `argv`; panics (a test
/// helper) when the script does not declare them.
pub fn declared_pair(script: &LuaScript, keys: &str, argv: &str) -> (usize, usize) {
    let get = |n: &str| {
        declared(script.source(), n).unwrap_or_else(|| panic!("script {} declares no `local {n} = N`", script.name()))
    };
    (get(keys), get(argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two<'a>(&'a str, u64);

    impl ScriptArgs for Two<'_> {
        fn push<S: Sink>(&self, to: &mut S) {
            to.key(self.0).arg(self.1).arg(&["a", "b"][..]);
        }
    }

    #[test]
    fn tally_counts_like_an_invocation() {
        assert_eq!(pushed(&Two("k", 1)), (1, 3));
    }

    #[test]
    fn declared_reads_local_constants() {
        let s = LuaScript::new("t", &["local NKEYS = 2\nlocal NARGV = 11 -- eleven\narity('t', NKEYS, NARGV)"]);
        assert_eq!(declared_pair(&s, "NKEYS", "NARGV"), (2, 11));
        assert_eq!(declared(s.source(), "MISSING"), None);
    }
}
