//! Workflow templates (`config/workflows/<name>.toml`): a plan written once and started many times with
//! a different request. The planner's simplest form (HTDAG by template): the template's steps, each
//! step's `input` extended with the start request as `request`.

use super::plan::{Plan, PlanFormatError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    pub description: String,
    pub plan: Plan,
}

/// Why a template cannot be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read workflow templates in {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("workflow template {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("no workflow template `{name}`; known: {known}")]
    Unknown { name: String, known: String },
    #[error("the start input must be a JSON object, got {0}")]
    Input(String),
}

/// The templates a node knows, by name (the file stem).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Templates(BTreeMap<String, Template>);

impl Template {
    /// Parse one template's TOML: the plan format (`steps`, `budget_cents`, `deadline`) plus a
    /// `description`.
    pub fn parse(name: &str, text: &str, path: &Path) -> Result<Template, TemplateError> {
        let invalid = |message: String| TemplateError::Invalid { path: path.to_path_buf(), message };
        let doc: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut json = serde_json::to_value(&doc).map_err(|e| invalid(e.to_string()))?;
        let description = match json.as_object_mut().and_then(|o| o.remove("description")) {
            None => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => return Err(invalid(format!("`description` must be a string, got {other}"))),
        };
        let plan = Plan::from_json(&json).map_err(|PlanFormatError(m)| invalid(m))?;
        if plan.workflow_id.is_some() || plan.tenant_id.is_some() {
            return Err(invalid("a template names no `workflow_id` or `tenant_id` (each start has its own)".into()));
        }
        Ok(Template { name: name.to_string(), description, plan })
    }
}

impl Templates {
    /// Every `*.toml` in `dir`; a missing directory is no templates.
    pub fn load_dir(dir: &Path) -> Result<Templates, TemplateError> {
        let io = |source| TemplateError::Io { path: dir.to_path_buf(), source };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Templates::default()),
            Err(e) => return Err(io(e)),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_string) else { continue };
            let text =
                std::fs::read_to_string(&path).map_err(|source| TemplateError::Io { path: path.clone(), source })?;
            out.insert(name.clone(), Template::parse(&name, &text, &path)?);
        }
        Ok(Templates(out))
    }

    pub fn from_list(list: impl IntoIterator<Item = Template>) -> Templates {
        Templates(list.into_iter().map(|t| (t.name.clone(), t)).collect())
    }

    pub fn get(&self, name: &str) -> Option<&Template> {
        self.0.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// The plan for starting template `name` with `input` (a JSON object): every step's input gets the
    /// request as `request` (a step's own `request` key is kept).
    pub fn instantiate(&self, name: &str, input: &Value) -> Result<Plan, TemplateError> {
        let t = self.get(name).ok_or_else(|| TemplateError::Unknown {
            name: name.to_string(),
            known: if self.0.is_empty() { "none".into() } else { self.names().join(", ") },
        })?;
        if !input.is_object() {
            return Err(TemplateError::Input(kind_of(input).into()));
        }
        let mut plan = t.plan.clone();
        for s in &mut plan.steps {
            if let Value::Object(o) = &mut s.input {
                o.entry("request").or_insert_with(|| input.clone());
            }
        }
        Ok(plan)
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::route::Fleet;
    use crate::workflow::validate::{validate, Limits};
    use serde_json::json;

    fn shipped() -> Templates {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/workflows");
        Templates::load_dir(&dir).expect("the shipped templates parse")
    }

    /// The roster's agent names, read from the shipped config/agents.toml.
    fn roster() -> Fleet {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agents.toml");
        let text = std::fs::read_to_string(path).expect("agents.toml");
        let agents = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("name = \"")?.strip_suffix('"').map(str::to_string))
            .collect();
        Fleet { agents, depth: Default::default() }
    }

    #[test]
    fn the_shipped_templates_are_valid_against_the_shipped_roster() {
        let t = shipped();
        assert_eq!(t.names(), ["business", "landing-page"]);
        for name in t.names() {
            let plan = t.instantiate(name, &json!({"idea": "pet food"})).expect("instantiates");
            validate(&plan, &Limits::default(), &[], &roster(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(plan.steps.iter().all(|s| s.input["request"] == json!({"idea": "pet food"})));
        }
        let business = t.get("business").expect("business");
        assert_eq!(business.plan.steps.len(), 13);
        assert_eq!(business.plan.steps.first().map(|s| s.id.as_str()), Some("idea"));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let p = Path::new("x.toml");
        let e = Template::parse("x", "[[steps]]\nid = \"a\"\nagnet = \"b\"\n", p).expect_err("typo");
        assert!(e.to_string().contains("x.toml") && e.to_string().contains("agnet"), "{e}");
        let e = shipped().instantiate("nope", &json!({})).expect_err("unknown");
        assert!(e.to_string().contains("business, landing-page"), "{e}");
        assert!(shipped().instantiate("business", &json!([1])).is_err());
    }
}
