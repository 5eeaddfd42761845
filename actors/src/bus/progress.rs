//! Progress reports on the task record: how big one may be, and what is kept instead of one that is
//! too big. The same rule on both buses.

use serde_json::{json, Value};

/// The largest progress report kept on a task record, as JSON text. A progress report is a status
/// line, a percentage, a few counters — not a result; a larger one is replaced by a note saying so.
pub const MAX_BYTES: usize = 64 * 1024;

/// The JSON text to store for `progress`: the report itself, or a note when it is over [`MAX_BYTES`].
pub fn stored(progress: &Value) -> String {
    let text = progress.to_string();
    if text.len() <= MAX_BYTES {
        return text;
    }
    json!({
        "truncated": true,
        "bytes": text.len(),
        "note": format!("the progress report was {} bytes, over the limit of {MAX_BYTES}; not kept", text.len()),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reports_are_kept_as_they_are() {
        let p = json!({"step": 2, "of": 5});
        assert_eq!(stored(&p), p.to_string());
    }

    #[test]
    fn a_report_over_the_limit_is_replaced_by_a_note() {
        let big = json!({"log": "x".repeat(MAX_BYTES)});
        let kept: Value = serde_json::from_str(&stored(&big)).expect("json");
        assert_eq!(kept["truncated"], true);
        assert_eq!(kept["bytes"], big.to_string().len());
        assert!(stored(&big).len() < 200);
    }
}
