//! The arguments of the bus's scripts, one struct per script (a head and an item struct for the
//! batched ones). Each pushes its KEYS and ARGV in the order its `.lua` file reads them; the tests
//! below check the counts against the constants each script declares.

use crate::bus::dlq::{DlqRetention, Original};
use crate::bus::{keys, GROUP};
use crate::connection::script::{ScriptArgs, Sink};
use crate::task::{TaskEnvelope, TopicName};

/// Who a task is, as every write of its record states it (task id, tenant, correlation id, parent),
/// so a record re-created by any step is complete. Empty for an entry that is not a task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    pub task_id: String,
    pub tenant_id: String,
    pub correlation_id: String,
    /// Empty when the task replies to none.
    pub parent: String,
}

impl Identity {
    pub fn of(env: &TaskEnvelope) -> Self {
        Identity {
            task_id: env.task_id.to_string(),
            tenant_id: env.tenant_id.to_string(),
            correlation_id: env.correlation_id.clone(),
            parent: env.parent_id().map(|p| p.to_string()).unwrap_or_default(),
        }
    }
}

impl ScriptArgs for Identity {
    fn push<S: Sink>(&self, to: &mut S) {
        to.arg(&self.task_id).arg(&self.tenant_id).arg(&self.correlation_id).arg(&self.parent);
    }
}

/// `publish.lua`: append a task and record it as queued.
pub struct PublishArgs<'a> {
    pub task: &'a TaskEnvelope,
    pub ttl_ms: u64,
}

impl ScriptArgs for PublishArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let (topic, who) = (&self.task.topic, Identity::of(self.task));
        to.key(keys::stream(topic)).key(keys::result(topic, &who.task_id));
        to.arg(self.task.to_json());
        who.push(to);
        to.arg(topic.as_str()).arg(self.ttl_ms);
        to.arg(self.task.workflow.as_ref().map(|w| format!("{}/{}", w.id, w.step)).unwrap_or_default());
    }
}

/// `begin.lua`, the part shared by the batch.
pub struct BeginHead<'a> {
    pub topic: &'a TopicName,
    pub ttl_ms: u64,
    /// The consumer that holds the deliveries, `<node>/<agent>`.
    pub consumer: &'a str,
}

impl ScriptArgs for BeginHead<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::stream(self.topic));
        to.arg(GROUP).arg(self.topic.as_str()).arg(self.ttl_ms);
        to.arg(keys::node_of_consumer(self.consumer)).arg(self.consumer);
    }
}

/// `begin.lua`, one delivery.
pub struct BeginItem<'a> {
    pub topic: &'a TopicName,
    pub entry_id: &'a str,
    pub task: &'a TaskEnvelope,
}

impl ScriptArgs for BeginItem<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let who = Identity::of(self.task);
        to.key(keys::result(self.topic, &who.task_id));
        to.arg(self.entry_id);
        who.push(to);
        to.arg(self.task.attempt);
    }
}

/// `complete_many.lua`, the part shared by the batch (one topic).
pub struct CompleteHead<'a> {
    pub topic: &'a TopicName,
}

impl ScriptArgs for CompleteHead<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::stream(self.topic)).key(keys::dlq(self.topic)).key(keys::retries(self.topic));
        to.arg(GROUP).arg(self.topic.as_str());
    }
}

/// What a completion writes; the fields of the other kinds are sent empty.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Ok { result: String },
    Retry { error: String, delay_ms: u64, next: String },
    Dead { error: String, reason: String, original: Original },
}

/// `complete_many.lua`, one outcome. Owned: it waits in the topic's completion lane.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteItem {
    /// The result record's key (its task's, or a placeholder for an entry without a task).
    pub result_key: String,
    pub entry_id: String,
    pub consumer: String,
    pub ttl_ms: u64,
    /// Empty when the entry could not be decoded into a task.
    pub who: Identity,
    pub attempt: u32,
    pub deliveries: u32,
    pub outcome: ItemOutcome,
}

impl ScriptArgs for CompleteItem {
    fn push<S: Sink>(&self, to: &mut S) {
        let none = Original { text: String::new(), bytes: 0, truncated: false };
        let (kind, result, error, delay_ms, next, reason, original) = match &self.outcome {
            ItemOutcome::Ok { result } => ("ok", result.as_str(), "", 0, "", "", &none),
            ItemOutcome::Retry { error, delay_ms, next } => {
                ("retry", "", error.as_str(), *delay_ms, next.as_str(), "", &none)
            }
            ItemOutcome::Dead { error, reason, original } => {
                ("dead", "", error.as_str(), 0, "", reason.as_str(), original)
            }
        };
        to.key(&self.result_key);
        to.arg(&self.entry_id).arg(&self.consumer).arg(kind).arg(self.ttl_ms);
        self.who.push(to);
        to.arg(self.attempt).arg(self.deliveries).arg(result).arg(error).arg(delay_ms).arg(next);
        to.arg(reason).arg(&original.text).arg(original.bytes).arg(u8::from(original.truncated));
    }
}

/// `redeliver.lua`: claim an entry again for the consumer that holds it.
pub struct RedeliverArgs<'a> {
    pub topic: &'a TopicName,
    pub consumer: &'a str,
    pub entry_id: &'a str,
}

impl ScriptArgs for RedeliverArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::stream(self.topic));
        to.arg(GROUP).arg(self.consumer).arg(self.entry_id);
    }
}

/// `read_pending.lua`: a consumer's own pending entries after an id.
pub struct ReadPendingArgs<'a> {
    pub topic: &'a TopicName,
    pub consumer: &'a str,
    pub after: &'a str,
    pub count: usize,
}

impl ScriptArgs for ReadPendingArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::stream(self.topic));
        to.arg(GROUP).arg(self.consumer).arg(self.after).arg(self.count);
    }
}

/// `reclaim.lua`: claim a dead consumer's idle entries.
pub struct ReclaimArgs<'a> {
    pub topic: &'a TopicName,
    pub dead: &'a str,
    pub claimer: &'a str,
    pub min_idle_ms: u64,
    pub limit: usize,
}

impl ScriptArgs for ReclaimArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::stream(self.topic));
        to.arg(GROUP).arg(self.dead).arg(self.claimer).arg(self.min_idle_ms).arg(self.limit);
    }
}

/// `move_due.lua`: due retries back into the stream.
pub struct MoveDueArgs<'a> {
    pub topic: &'a TopicName,
    pub limit: usize,
}

impl ScriptArgs for MoveDueArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::retries(self.topic)).key(keys::stream(self.topic));
        to.arg(self.limit);
    }
}

/// `trim.lua`: acknowledged entries out of the stream.
pub struct TrimArgs<'a> {
    pub topic: &'a TopicName,
}

impl ScriptArgs for TrimArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::stream(self.topic));
        to.arg(GROUP);
    }
}

/// `heartbeat.lua`: write this process's lease on the node id.
pub struct HeartbeatArgs<'a> {
    pub node_id: &'a str,
    pub instance: &'a str,
    /// JSON naming `instance`, shown to a process that finds the id taken.
    pub info: &'a str,
    pub ttl_ms: u64,
    /// The instance of a holder known to be dead ('' for none).
    pub dead: &'a str,
}

impl ScriptArgs for HeartbeatArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::node(self.node_id));
        to.arg(self.instance).arg(self.info).arg(self.ttl_ms).arg(self.dead);
    }
}

/// `release.lua`: give the lease back if this instance holds it.
pub struct ReleaseArgs<'a> {
    pub node_id: &'a str,
    pub instance: &'a str,
}

impl ScriptArgs for ReleaseArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::node(self.node_id));
        to.arg(self.instance);
    }
}

/// `dlq_replay.lua`: a dead letter back on its topic as attempt 1.
pub struct DlqReplayArgs<'a> {
    pub topic: &'a TopicName,
    pub dlq_id: &'a str,
    pub task: &'a TaskEnvelope,
    pub ttl_ms: u64,
}

impl ScriptArgs for DlqReplayArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let who = Identity::of(self.task);
        to.key(keys::dlq(self.topic)).key(keys::stream(self.topic)).key(keys::result(self.topic, &who.task_id));
        to.arg(self.dlq_id).arg(self.task.to_json());
        who.push(to);
        to.arg(self.topic.as_str()).arg(self.ttl_ms);
    }
}

/// `dlq_trim.lua`: a retention applied to a topic's DLQ.
pub struct DlqTrimArgs<'a> {
    pub topic: &'a TopicName,
    pub retention: &'a DlqRetention,
}

impl ScriptArgs for DlqTrimArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        let max_age_ms = self.retention.max_age.as_millis().min(u128::from(u64::MAX)) as u64;
        to.key(keys::dlq(self.topic));
        to.arg(max_age_ms).arg(self.retention.max_len);
    }
}

/// `progress.lua`: an agent's latest progress report onto its task's record.
pub struct ProgressArgs<'a> {
    pub topic: &'a TopicName,
    pub task_id: &'a str,
    /// JSON text, already bounded ([`crate::bus::progress::stored`]).
    pub progress: &'a str,
}

impl ScriptArgs for ProgressArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::result(self.topic, self.task_id));
        to.arg(self.progress);
    }
}

/// `cancel.lua`: the cancel flag onto a task's record.
pub struct CancelArgs<'a> {
    pub topic: &'a TopicName,
    pub task_id: &'a str,
}

impl ScriptArgs for CancelArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::result(self.topic, self.task_id));
    }
}

/// `rate.lua`: one request against an agent's rate limit.
pub struct RateArgs<'a> {
    pub agent: &'a str,
    pub gcra: &'a crate::policy::rate::Gcra,
}

impl ScriptArgs for RateArgs<'_> {
    fn push<S: Sink>(&self, to: &mut S) {
        to.key(keys::rate(self.agent));
        to.arg(self.gcra.interval_us()).arg(self.gcra.burst());
    }
}

#[cfg(test)]
mod tests {
    use super::super::scripts::Scripts;
    use super::*;
    use crate::connection::script::{declared_pair, pushed, LuaScript};

    fn topic() -> TopicName {
        "genesis.qa".parse().expect("topic")
    }

    fn env() -> TaskEnvelope {
        TaskEnvelope::new(topic(), crate::tenant::TenantId::parse("t").expect("tenant"), serde_json::json!({}))
    }

    fn single(script: &LuaScript, args: &impl ScriptArgs) {
        assert_eq!(pushed(args), declared_pair(script, "NKEYS", "NARGV"), "{}", script.name());
    }

    fn batched(script: &LuaScript, head: &impl ScriptArgs, item: &impl ScriptArgs) {
        assert_eq!(pushed(head), declared_pair(script, "HEAD_KEYS", "HEAD_ARGV"), "{} head", script.name());
        assert_eq!(pushed(item), declared_pair(script, "ITEM_KEYS", "ITEM_ARGV"), "{} item", script.name());
    }

    #[test]
    fn every_struct_pushes_what_its_script_declares() {
        let s = Scripts::load();
        let (t, e) = (topic(), env());
        let id = e.task_id.to_string();
        single(&s.publish, &PublishArgs { task: &e, ttl_ms: 1 });
        let head = BeginHead { topic: &t, ttl_ms: 1, consumer: "n/a" };
        batched(&s.begin, &head, &BeginItem { topic: &t, entry_id: "1-0", task: &e });
        for outcome in [
            ItemOutcome::Ok { result: "{}".into() },
            ItemOutcome::Retry { error: "e".into(), delay_ms: 5, next: e.to_json() },
            ItemOutcome::Dead {
                error: "e".into(),
                reason: "poison".into(),
                original: Original { text: "{".into(), bytes: 9, truncated: true },
            },
        ] {
            let item = CompleteItem {
                result_key: keys::result(&t, &id),
                entry_id: "1-0".into(),
                consumer: "n/a".into(),
                ttl_ms: 1,
                who: Identity::of(&e),
                attempt: 1,
                deliveries: 1,
                outcome,
            };
            batched(&s.complete_many, &CompleteHead { topic: &t }, &item);
        }
        single(&s.redeliver, &RedeliverArgs { topic: &t, consumer: "n/a", entry_id: "1-0" });
        single(&s.read_pending, &ReadPendingArgs { topic: &t, consumer: "n/a", after: "0", count: 1 });
        single(&s.reclaim, &ReclaimArgs { topic: &t, dead: "d/a", claimer: "n/a", min_idle_ms: 1, limit: 1 });
        single(&s.move_due, &MoveDueArgs { topic: &t, limit: 1 });
        single(&s.trim, &TrimArgs { topic: &t });
        single(&s.dlq_replay, &DlqReplayArgs { topic: &t, dlq_id: "1-0", task: &e, ttl_ms: 1 });
        single(&s.dlq_trim, &DlqTrimArgs { topic: &t, retention: &DlqRetention::default() });
        single(&s.heartbeat, &HeartbeatArgs { node_id: "n", instance: "i", info: "{}", ttl_ms: 1, dead: "" });
        single(&s.release, &ReleaseArgs { node_id: "n", instance: "i" });
        single(&s.progress, &ProgressArgs { topic: &t, task_id: &id, progress: "{}" });
        single(&s.cancel, &CancelArgs { topic: &t, task_id: &id });
        let limit = crate::roster::RateLimit { count: 1, per: std::time::Duration::from_secs(1), burst: 1 };
        single(&s.rate, &RateArgs { agent: "genesis.qa", gcra: &crate::policy::rate::Gcra::new(&limit) });
    }

    #[test]
    fn no_script_names_the_group() {
        let s = Scripts::load();
        for script in [&s.publish, &s.begin, &s.complete_many, &s.redeliver, &s.read_pending, &s.reclaim, &s.trim] {
            assert!(!script.source().contains("'genesis'"), "{} writes the group name", script.name());
        }
    }
}
