//! The A2A 1.0 JSON-RPC messages Genesis sends and reads, as `a2a-sdk` 1.3.0 serves them
//! (tests/agents/README.md §3 records the observed shapes).
//!
//! Reading is lenient on purpose: servers omit every field that holds its default value (no
//! `artifacts`, no `status.message`, no `metadata`), and may add fields we do not know, so everything
//! but a task's `id` and `status.state` is optional here. Enum values are the protobuf names as
//! strings (`TASK_STATE_COMPLETED`, `ROLE_USER`); a state we do not know is kept as
//! [`TaskState::Unknown`] rather than failing the whole answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JSON-RPC 2.0 request (`jsonrpc` is required by the server: -32600 without it).
#[derive(Debug, Serialize)]
pub struct Request<'a, P: Serialize> {
    pub jsonrpc: &'static str,
    pub id: u64,
    pub method: &'a str,
    pub params: P,
}

impl<'a, P: Serialize> Request<'a, P> {
    pub fn new(id: u64, method: &'a str, params: P) -> Self {
        Request { jsonrpc: "2.0", id, method, params }
    }
}

/// A JSON-RPC 2.0 answer: exactly one of `result` and `error` (both arrive with HTTP 200).
#[derive(Debug, Deserialize)]
pub struct Response<T> {
    #[serde(default = "none")]
    pub result: Option<T>,
    #[serde(default)]
    pub error: Option<RpcError>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RpcError {
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// `SendMessage` / `SendStreamingMessage` params.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendParams {
    pub message: Message,
    pub configuration: SendConfiguration,
    /// The hosting tenant the agent's card names for the chosen interface (not Genesis's tenant,
    /// which travels in the message metadata).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendConfiguration {
    /// Answer with the SUBMITTED task at once, so Genesis learns the agent's task id before the work
    /// runs (needed to cancel it) and follows it with `GetTask`.
    pub return_immediately: bool,
    /// 0: no history in answers (it grows with every status update and is never used here).
    pub history_length: u32,
}

/// `GetTask` params.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTaskParams<'a> {
    pub id: &'a str,
    pub history_length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
}

/// `CancelTask` params.
#[derive(Debug, Serialize)]
pub struct CancelTaskParams<'a> {
    pub id: &'a str,
    pub metadata: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
}

/// `ListTasks` params: used only to find the tasks of one context when the agent's task id never
/// reached us (an agent that ignores `returnImmediately`, cancelled before it answered).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTasksParams<'a> {
    pub context_id: &'a str,
    pub history_length: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListTasksResult {
    #[serde(default)]
    pub tasks: Vec<Task>,
}

/// What `SendMessage` answers: the task it started, or (agents that answer without a task) a message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SendResult {
    Task(Task),
    Message(Message),
}

/// One event of a `SendStreamingMessage` stream: exactly one key per event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamEvent {
    Task(Task),
    StatusUpdate(StatusUpdate),
    ArtifactUpdate(ArtifactUpdate),
    Message(Message),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    #[serde(default)]
    pub task_id: String,
    pub status: TaskStatus,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactUpdate {
    #[serde(default)]
    pub task_id: String,
    pub artifact: Artifact,
    /// Add these parts to the artifact with the same id instead of replacing it.
    #[serde(default)]
    pub append: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default)]
    pub message_id: String,
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    #[serde(rename = "ROLE_USER")]
    User,
    #[serde(rename = "ROLE_AGENT")]
    Agent,
    #[default]
    #[serde(other, rename = "ROLE_UNSPECIFIED")]
    Unspecified,
}

/// A part holds exactly one of `text`, `data`, `url`, `raw` (no `kind` field in 1.0). Empty strings
/// count as absent: `ListTasks` answers spell defaults out (`"mediaType": ""`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Bytes, base64 as the server sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

impl Part {
    pub fn data(value: Value) -> Part {
        Part { data: Some(value), ..Part::default() }
    }

    #[cfg(test)]
    pub fn text(text: impl Into<String>) -> Part {
        Part { text: Some(text.into()), ..Part::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    #[serde(default)]
    pub context_id: String,
    pub status: TaskStatus,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskStatus {
    pub state: TaskState,
    #[serde(default)]
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TaskState {
    #[serde(rename = "TASK_STATE_SUBMITTED")]
    Submitted,
    #[serde(rename = "TASK_STATE_WORKING")]
    Working,
    #[serde(rename = "TASK_STATE_COMPLETED")]
    Completed,
    #[serde(rename = "TASK_STATE_FAILED")]
    Failed,
    #[serde(rename = "TASK_STATE_CANCELED")]
    Canceled,
    #[serde(rename = "TASK_STATE_REJECTED")]
    Rejected,
    #[serde(rename = "TASK_STATE_INPUT_REQUIRED")]
    InputRequired,
    #[serde(rename = "TASK_STATE_AUTH_REQUIRED")]
    AuthRequired,
    /// `TASK_STATE_UNSPECIFIED` or a state newer than this client: followed like a working task
    /// (the agent's timeout bounds it).
    #[serde(other)]
    Unknown,
}

impl TaskState {
    /// Short lower-case name for progress reports and errors.
    pub fn label(self) -> &'static str {
        match self {
            TaskState::Submitted => "submitted",
            TaskState::Working => "working",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Rejected => "rejected",
            TaskState::InputRequired => "input_required",
            TaskState::AuthRequired => "auth_required",
            TaskState::Unknown => "unknown",
        }
    }

    /// The task will not change any more without a new message from us (terminal or interrupted).
    pub fn is_settled(self) -> bool {
        !matches!(self, TaskState::Submitted | TaskState::Working | TaskState::Unknown)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    #[serde(default)]
    pub artifact_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_completed_task_as_the_sdk_sends_it_parses() {
        let body = json!({"result": {"task": {
            "id": "b76f", "contextId": "d19e",
            "status": {"state": "TASK_STATE_COMPLETED", "timestamp": "2026-12-01T10:10:02.103858Z"},
            "artifacts": [{"artifactId": "d9e3", "name": "result", "parts": [{"data": {"x": 3.0}}, {"text": "done"}]}],
            "history": [{"messageId": "m", "role": "ROLE_USER", "parts": [{"data": {}}]}]}},
            "id": 1, "jsonrpc": "2.0"});
        let r: Response<SendResult> = serde_json::from_value(body).expect("parses");
        let Some(SendResult::Task(t)) = r.result else { panic!("a task") };
        assert_eq!(t.status.state, TaskState::Completed);
        assert_eq!(t.artifacts[0].parts, vec![Part::data(json!({"x": 3.0})), Part::text("done")]);
    }

    #[test]
    fn errors_stream_events_and_unknown_states_parse() {
        let e: Response<Task> = serde_json::from_value(
            json!({"error": {"code": -32001, "message": "Task not found", "data": []}, "id": 1}),
        )
        .expect("parses");
        assert_eq!((e.error.map(|e| e.code), e.result.is_none()), (Some(-32001), true));
        let ev: Response<StreamEvent> = serde_json::from_value(json!({"result": {"statusUpdate": {
            "taskId": "t", "contextId": "c", "status": {"state": "TASK_STATE_SOMETHING_NEW"}}}}))
        .expect("parses");
        assert!(matches!(ev.result, Some(StreamEvent::StatusUpdate(u)) if u.status.state == TaskState::Unknown));
    }

    #[test]
    fn a_user_message_serialises_with_protobuf_names_and_no_empty_fields() {
        let m = Message {
            message_id: "m-1".into(),
            role: Role::User,
            parts: vec![Part::data(json!({"a": 1}))],
            context_id: None,
            task_id: None,
            metadata: None,
        };
        assert_eq!(
            serde_json::to_value(&m).expect("json"),
            json!({"messageId": "m-1", "role": "ROLE_USER", "parts": [{"data": {"a": 1}}]})
        );
    }
}
