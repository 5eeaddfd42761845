//! What an agent's answers mean for the Genesis task (pure; docs/agents.md `## a2a` has the tables).
//!
//! - [`settled`]: a task state → the attempt's result (or `None`: keep following it);
//! - [`result_of`]: a completed task's artifacts → the task result;
//! - [`progress_of`]: a working task's status → a progress report;
//! - [`classify`]: a failed exchange → the [`ExecError`] that tells the worker what to do, which
//!   depends on whether the agent had accepted the task yet ([`Phase`]).

use super::client::{shorten, CallError};
use super::wire::{Artifact, ArtifactUpdate, Message, Part, Task, TaskState, TaskStatus};
use crate::executor::ExecError;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Longest agent text carried into an error (errors go to logs, records and dead letters).
const MAX_TEXT: usize = 2000;

/// How long a 429 without `Retry-After` makes the task wait.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The attempt's result once the task is terminal or interrupted; `None` while it is still running.
pub fn settled(task: &Task) -> Option<Result<Value, ExecError>> {
    let text = || status_text(&task.status);
    Some(match task.status.state {
        TaskState::Submitted | TaskState::Working | TaskState::Unknown => return None,
        TaskState::Completed => Ok(result_of(&task.artifacts, task.status.message.as_ref())),
        TaskState::Failed => Err(ExecError::Retryable(format!("the agent's task failed: {}", text()))),
        TaskState::Rejected => Err(ExecError::Fatal(format!("the agent rejected the task: {}", text()))),
        TaskState::InputRequired => Err(ExecError::Fatal(format!(
            "the agent asks for more input, which an orchestrated task cannot give: {}",
            text()
        ))),
        TaskState::AuthRequired => Err(ExecError::Fatal(format!(
            "the agent asks for authentication (set its credentials in the agent's `headers`): {}",
            text()
        ))),
        TaskState::Canceled => Err(ExecError::Cancelled(format!("the agent canceled the task: {}", text()))),
    })
}

/// The task result from a completed task's artifacts (or, without artifacts, from the parts of the
/// message that completed it, or of a direct `{"message": …}` answer):
/// - exactly one part in all: a data part gives its JSON as is, a text part the JSON string;
/// - otherwise `{"artifacts": [{"name": <name or null>, "parts": [<part>, …]}, …]}`, each part one
///   of `{"data": …}`, `{"text": …}`, `{"url": …}`, `{"raw": <base64>}` (with `mediaType` and
///   `filename` when the agent set them).
pub fn result_of(artifacts: &[Artifact], message: Option<&Message>) -> Value {
    let from_message;
    let artifacts = match message {
        Some(m) if artifacts.is_empty() && !m.parts.is_empty() => {
            from_message = [Artifact { artifact_id: String::new(), name: None, parts: m.parts.clone() }];
            &from_message[..]
        }
        _ => artifacts,
    };
    let mut all = artifacts.iter().flat_map(|a| a.parts.iter());
    if let (Some(only), None) = (all.next(), all.next()) {
        if let Some(d) = &only.data {
            return d.clone();
        }
        if let (Some(t), None, None) = (&only.text, &only.url, &only.raw) {
            return Value::String(t.clone());
        }
    }
    let artifacts: Vec<Value> = artifacts
        .iter()
        .map(|a| json!({"name": a.name.as_deref().filter(|n| !n.is_empty()), "parts": a.parts.iter().map(part_json).collect::<Vec<_>>()}))
        .collect();
    json!({ "artifacts": artifacts })
}

fn part_json(p: &Part) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            m.insert(k.into(), Value::String(v.into()));
        }
    };
    put("text", &p.text);
    put("url", &p.url);
    put("raw", &p.raw);
    put("mediaType", &p.media_type);
    put("filename", &p.filename);
    if let Some(d) = &p.data {
        m.insert("data".into(), d.clone());
    }
    Value::Object(m)
}

/// The human side of a status: its message's text parts joined, else its first data part as
/// compact JSON, else the state's name.
pub fn status_text(status: &TaskStatus) -> String {
    let Some(m) = &status.message else { return format!("{} (no status message)", status.state.label()) };
    let texts: Vec<&str> = m.parts.iter().filter_map(|p| p.text.as_deref()).filter(|t| !t.is_empty()).collect();
    let text = if !texts.is_empty() {
        texts.join(" ")
    } else if let Some(d) = m.parts.iter().find_map(|p| p.data.as_ref()) {
        d.to_string()
    } else {
        format!("{} (no status message)", status.state.label())
    };
    shorten(&text, MAX_TEXT)
}

/// A progress report for a running task's status: `{"state": "working", "text"?: …, "data"?: …}`
/// (`text`: the status message's text parts joined; `data`: its first data part).
pub fn progress_of(status: &TaskStatus) -> Value {
    let mut m = Map::new();
    m.insert("state".into(), status.state.label().into());
    if let Some(msg) = &status.message {
        let texts: Vec<&str> = msg.parts.iter().filter_map(|p| p.text.as_deref()).filter(|t| !t.is_empty()).collect();
        if !texts.is_empty() {
            m.insert("text".into(), shorten(&texts.join(" "), MAX_TEXT).into());
        }
        if let Some(d) = msg.parts.iter().find_map(|p| p.data.clone()) {
            m.insert("data".into(), d);
        }
    }
    Value::Object(m)
}

/// Which status updates were already reported, so each reaches `progress` once.
#[derive(Debug, Default)]
pub struct ProgressSeen(Option<(TaskState, String)>);

impl ProgressSeen {
    /// The report for `status` if it is new (another state, or another status message).
    pub fn fresh(&mut self, status: &TaskStatus) -> Option<Value> {
        let key = (status.state, status.message.as_ref().map(message_key).unwrap_or_default());
        if self.0.as_ref() == Some(&key) {
            return None;
        }
        self.0 = Some(key);
        Some(progress_of(status))
    }
}

fn message_key(m: &Message) -> String {
    if m.message_id.is_empty() {
        serde_json::to_string(&m.parts).unwrap_or_default()
    } else {
        m.message_id.clone()
    }
}

/// Apply a streamed artifact update: `append` adds its parts to the artifact with the same id,
/// otherwise it replaces that artifact (or is added as a new one).
pub fn merge_artifact(artifacts: &mut Vec<Artifact>, update: ArtifactUpdate) {
    let a = update.artifact;
    let same = artifacts.iter_mut().find(|x| !a.artifact_id.is_empty() && x.artifact_id == a.artifact_id);
    match same {
        Some(existing) if update.append => existing.parts.extend(a.parts),
        Some(existing) => *existing = a,
        None => artifacts.push(a),
    }
}

/// Where in the attempt an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the agent accepted the task (card, `SendMessage`): nothing runs at the agent.
    Start,
    /// While following a task the agent accepted (`GetTask`, the stream).
    Following,
}

/// A failed exchange → what the worker should do with the attempt.
pub fn classify(phase: Phase, method: &str, e: &CallError) -> ExecError {
    use ExecError::*;
    let msg = format!("{method}: {e}");
    let server = |error: String, retry_after| Server { error, retry_after };
    match e {
        CallError::Connect { .. } if phase == Phase::Start => Unavailable(msg),
        // The agent went away under a task it had accepted: like a crash of the child (a delivery,
        // bounded by the poison limit); its next delivery finds it down and waits without an attempt.
        CallError::Connect { .. } => Crashed(format!("lost contact with the agent while it ran the task: {msg}")),
        CallError::Timeout { .. } | CallError::Transfer { .. } | CallError::Decode { .. } => server(msg, None),
        CallError::TooLarge { .. } => Fatal(msg),
        CallError::Http { status, retry_after, .. } => match status {
            429 => RetryAfter { error: msg, after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER) },
            500..=599 => server(msg, *retry_after),
            408 => Retryable(msg),
            // Wrong URL or credentials: the agent as configured cannot be used; no task is at fault.
            401 | 403 | 404 | 405 if phase == Phase::Start => {
                Unavailable(format!("{msg} (check the agent's `endpoint` and `headers`)"))
            }
            401 | 403 | 404 | 405 => server(msg, None),
            _ => Fatal(msg),
        },
        CallError::Rpc { code, .. } => match code {
            // Not an A2A 1.0 JSON-RPC endpoint (0.3, or another service): the card is fetched again.
            -32601 | -32009 if phase == Phase::Start => {
                Unavailable(format!("{msg} (the endpoint does not speak A2A 1.0 JSON-RPC)"))
            }
            -32601 | -32009 => server(msg, None),
            -32001 if phase == Phase::Following => {
                Crashed(format!("the agent no longer knows the task (restarted without its task store?): {msg}"))
            }
            // This task's request is refused as it is: parse error, invalid request or params, task
            // not found / not cancelable, push or operation unsupported, content type unsupported,
            // extended card not configured.
            -32700 | -32600 | -32602 | -32005..=-32001 | -32007 => Fatal(msg),
            // Internal error, invalid agent response, anything else server-defined: worth a retry.
            _ => Retryable(msg),
        },
    }
}

/// May following a task shrug this failure off and ask again (the agent may be restarting)?
pub fn transient(e: &CallError) -> bool {
    match e {
        CallError::Connect { .. } | CallError::Timeout { .. } | CallError::Transfer { .. } => true,
        CallError::Http { status, .. } => matches!(status, 408 | 429 | 500..=599),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::a2a::wire::Role;

    fn msg(parts: Vec<Part>) -> Message {
        Message { message_id: "m".into(), role: Role::Agent, parts, context_id: None, task_id: None, metadata: None }
    }

    fn task(state: TaskState, text: Option<&str>, artifacts: Vec<Artifact>) -> Task {
        Task {
            id: "t".into(),
            context_id: "c".into(),
            status: TaskStatus { state, message: text.map(|t| msg(vec![Part::text(t)])) },
            artifacts,
        }
    }

    fn artifact(name: &str, parts: Vec<Part>) -> Artifact {
        Artifact { artifact_id: name.into(), name: Some(name.into()), parts }
    }

    #[test]
    fn each_state_maps_to_its_outcome() {
        assert_eq!(settled(&task(TaskState::Working, Some("step 1"), vec![])), None);
        assert_eq!(settled(&task(TaskState::Submitted, None, vec![])), None);
        assert_eq!(settled(&task(TaskState::Unknown, None, vec![])), None);
        let done = task(TaskState::Completed, None, vec![artifact("r", vec![Part::data(json!({"x": 1.0}))])]);
        assert_eq!(settled(&done), Some(Ok(json!({"x": 1.0}))));
        let err = |s, t| settled(&task(s, t, vec![])).and_then(Result::err);
        assert!(
            matches!(err(TaskState::Failed, Some("disk on fire")), Some(ExecError::Retryable(m)) if m.ends_with("disk on fire"))
        );
        assert!(
            matches!(err(TaskState::Rejected, Some("not my job")), Some(ExecError::Fatal(m)) if m.contains("rejected") && m.ends_with("not my job"))
        );
        assert!(
            matches!(err(TaskState::InputRequired, Some("more")), Some(ExecError::Fatal(m)) if m.contains("input"))
        );
        assert!(
            matches!(err(TaskState::AuthRequired, None), Some(ExecError::Fatal(m)) if m.contains("authentication") && m.contains("auth_required (no status message)"))
        );
        assert!(matches!(err(TaskState::Canceled, Some("by request")), Some(ExecError::Cancelled(_))));
    }

    #[test]
    fn a_single_part_is_the_result_itself() {
        assert_eq!(result_of(&[artifact("r", vec![Part::data(json!([1, 2]))])], None), json!([1, 2]));
        assert_eq!(result_of(&[artifact("r", vec![Part::text("42")])], None), json!("42"));
    }

    #[test]
    fn several_parts_keep_every_artifact_and_part() {
        let file = Part {
            url: Some("https://f/x.pdf".into()),
            media_type: Some("application/pdf".into()),
            filename: Some(String::new()),
            ..Part::default()
        };
        let arts =
            [artifact("result", vec![Part::data(json!({"a": 1})), Part::text("done")]), artifact("file", vec![file])];
        assert_eq!(
            result_of(&arts, None),
            json!({"artifacts": [
                {"name": "result", "parts": [{"data": {"a": 1}}, {"text": "done"}]},
                {"name": "file", "parts": [{"url": "https://f/x.pdf", "mediaType": "application/pdf"}]}]})
        );
        // A lone url part is not collapsed: it needs its media type alongside.
        assert_eq!(result_of(&arts[1..], None)["artifacts"][0]["name"], "file");
    }

    #[test]
    fn without_artifacts_the_completing_message_is_the_result() {
        assert_eq!(result_of(&[], Some(&msg(vec![Part::text("hi")]))), json!("hi"));
        assert_eq!(result_of(&[], None), json!({"artifacts": []}));
    }

    #[test]
    fn status_text_prefers_text_then_data() {
        let s = |parts| TaskStatus { state: TaskState::Failed, message: Some(msg(parts)) };
        assert_eq!(status_text(&s(vec![Part::text("a"), Part::data(json!(1)), Part::text("b")])), "a b");
        assert_eq!(status_text(&s(vec![Part::data(json!({"k": "v"}))])), r#"{"k":"v"}"#);
        assert_eq!(status_text(&s(vec![Part::text("x".repeat(5000))])).len(), MAX_TEXT + "…".len());
    }

    #[test]
    fn progress_is_reported_once_per_status_message() {
        let mut seen = ProgressSeen::default();
        let working = |id: &str, parts| TaskStatus {
            state: TaskState::Working,
            message: Some(Message { message_id: id.into(), ..msg(parts) }),
        };
        let s1 = working("1", vec![Part::text("step 1 of 2"), Part::data(json!({"pct": 50.0}))]);
        assert_eq!(seen.fresh(&s1), Some(json!({"state": "working", "text": "step 1 of 2", "data": {"pct": 50.0}})));
        assert_eq!(seen.fresh(&s1), None, "the same status polled again");
        assert_eq!(
            seen.fresh(&working("2", vec![Part::text("step 2 of 2")])).map(|p| p["text"].clone()),
            Some(json!("step 2 of 2"))
        );
        assert_eq!(
            seen.fresh(&TaskStatus { state: TaskState::Submitted, message: None }),
            Some(json!({"state": "submitted"}))
        );
    }

    #[test]
    fn artifact_updates_replace_or_append_by_id() {
        let mut arts = vec![];
        let up =
            |id: &str, parts, append| ArtifactUpdate { task_id: "t".into(), artifact: artifact(id, parts), append };
        merge_artifact(&mut arts, up("a", vec![Part::text("1")], false));
        merge_artifact(&mut arts, up("a", vec![Part::text("2")], true));
        merge_artifact(&mut arts, up("b", vec![Part::text("x")], false));
        merge_artifact(&mut arts, up("b", vec![Part::text("y")], false));
        assert_eq!(
            arts,
            vec![artifact("a", vec![Part::text("1"), Part::text("2")]), artifact("b", vec![Part::text("y")])]
        );
    }

    fn conn() -> CallError {
        CallError::Connect { url: "http://h/".into(), detail: "refused".into() }
    }
    fn http(status: u16) -> CallError {
        CallError::Http { url: "http://h/".into(), status, retry_after: Some(Duration::from_secs(7)) }
    }
    fn rpc(code: i64) -> CallError {
        CallError::Rpc { code, message: "m".into() }
    }

    #[test]
    fn unreachable_is_unavailable_before_the_task_started_and_a_crash_after() {
        assert!(matches!(classify(Phase::Start, "SendMessage", &conn()), ExecError::Unavailable(_)));
        assert!(matches!(classify(Phase::Following, "GetTask", &conn()), ExecError::Crashed(_)));
        assert!(matches!(classify(Phase::Start, "SendMessage", &http(404)), ExecError::Unavailable(_)));
        assert!(matches!(classify(Phase::Following, "GetTask", &http(404)), ExecError::Server { .. }));
        assert!(matches!(classify(Phase::Start, "SendMessage", &rpc(-32009)), ExecError::Unavailable(_)));
        assert!(matches!(classify(Phase::Following, "GetTask", &rpc(-32001)), ExecError::Crashed(_)));
    }

    #[test]
    fn http_statuses_and_rpc_codes_map_as_documented() {
        let p = Phase::Start;
        assert_eq!(
            classify(p, "M", &http(503)),
            ExecError::Server {
                error: "M: http://h/ answered HTTP 503".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(
            matches!(classify(p, "M", &http(429)), ExecError::RetryAfter { after, .. } if after == Duration::from_secs(7))
        );
        assert!(matches!(classify(p, "M", &http(400)), ExecError::Fatal(_)));
        assert!(matches!(classify(p, "M", &http(408)), ExecError::Retryable(_)));
        for code in [-32700, -32600, -32602, -32001, -32004, -32005, -32007] {
            assert!(matches!(classify(p, "M", &rpc(code)), ExecError::Fatal(_)), "{code}");
        }
        for code in [-32603, -32006, -32000, 1] {
            assert!(matches!(classify(p, "M", &rpc(code)), ExecError::Retryable(_)), "{code}");
        }
        assert!(
            matches!(classify(p, "M", &CallError::TooLarge { url: "u".into(), limit: 1 }), ExecError::Fatal(m) if m.contains("limit"))
        );
    }

    #[test]
    fn only_passing_troubles_are_transient() {
        assert!(transient(&conn()) && transient(&http(502)) && transient(&http(429)));
        assert!(!transient(&http(404)) && !transient(&rpc(-32001)));
    }
}
