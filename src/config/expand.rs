//! `${VAR}`, `${VAR:-default}` and `$$` in string values, expanded on the parsed document.
//!
//! Expansion walks the values the TOML parser produced instead of rewriting the file's text, so it
//! needs no knowledge of TOML syntax: comments and keys are never touched, and a variable's value is
//! the string's content whatever it holds (quotes, backslashes, newlines), with no escaping and no way
//! to change the document's structure. Error messages quote the file as written, so a variable's
//! value (a password in a Redis URL) never shows up in them.
//!
//! - `${VAR}`: the value of VAR (may be empty); an error if VAR is not set.
//! - `${VAR:-default}`: the value of VAR if set and non-empty, else `default` (up to the first `}`).
//! - `$$`: a literal `$`. Any other `$` is kept as is.
//!
//! Every bad reference in a file is reported at once, each with its key, the value as written and
//! the fix.

use super::checks::quote;
use super::issues::Issues;
use std::borrow::Cow;
use std::collections::HashMap;
use toml::de::{DeTable, DeValue};

/// Looks up an environment variable.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The values that expansion changed, by key path: what was written and what it became.
#[derive(Debug, Default)]
pub(crate) struct Expanded(HashMap<String, (String, String)>);

impl Expanded {
    /// `message` (about the value at `key`) with the expanded value replaced by the text as written,
    /// so that an error never shows a variable's value (serde's type errors quote the value).
    pub fn hide_in(&self, key: &str, message: &str) -> String {
        match self.0.get(key) {
            Some((written, expanded)) => message.replace(&format!("{expanded:?}"), &format!("{written:?} (expanded)")),
            None => message.to_string(),
        }
    }
}

/// Expand every string value of `doc` in place; bad references go to `issues`.
pub(crate) fn expand_document(doc: &mut DeTable<'_>, env: Env, issues: &mut Issues) -> Expanded {
    let mut expanded = Expanded::default();
    for (key, value) in doc.iter_mut() {
        walk(key.get_ref().to_string(), value.get_mut(), env, issues, &mut expanded);
    }
    expanded
}

fn walk(path: String, value: &mut DeValue<'_>, env: Env, issues: &mut Issues, done: &mut Expanded) {
    match value {
        DeValue::String(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) => {
                if expanded != **s {
                    done.0.insert(path, (s.to_string(), expanded.clone()));
                }
                *s = Cow::Owned(expanded);
            }
            Err(problems) => {
                let shown = quote(&genesis_actors::secret::redact_url(s));
                for problem in problems {
                    issues.push(path.clone(), Some(shown.clone()), problem);
                }
            }
        },
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(format!("{path}[{i}]"), item.get_mut(), env, issues, done);
            }
        }
        DeValue::Table(table) => {
            for (key, item) in table.iter_mut() {
                walk(format!("{path}.{}", key.get_ref()), item.get_mut(), env, issues, done);
            }
        }
        _ => {}
    }
}

/// Expand the references in one string; every problem found in it on error.
pub(crate) fn expand(text: &str, env: Env) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body) = rest.strip_prefix("${") else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        // A reference ends at the first `}` on its line.
        let Some(close) = body.find(['}', '\n']).filter(|&end| body[end..].starts_with('}')) else {
            problems.push("unterminated `${` (expected `${NAME}` or `${NAME:-default}`)".to_string());
            return Err(problems);
        };
        match reference(&body[..close], env) {
            Ok(value) => out.push_str(&value),
            Err(problem) => problems.push(problem),
        }
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The value of one reference, `inner` being the text between `${` and `}`.
fn reference(inner: &str, env: Env) -> Result<String, String> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(format!(
            "invalid variable name `{name}` in `${{{inner}}}` (expected `${{NAME}}` or `${{NAME:-default}}`)"
        ));
    }
    match (env(name), default) {
        (Some(v), Some(_)) if !v.is_empty() => Ok(v),
        (_, Some(default)) if default.contains("${") => {
            Err(format!("nested `${{` in the default of `${{{inner}}}` is not supported"))
        }
        (_, Some(default)) => Ok(default.replace("$$", "$")),
        (Some(v), None) => Ok(v),
        (None, None) => {
            Err(format!("environment variable {name} is not set (write `${{{name}:-default}}` to give a default)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("redis.local".into()),
            "EMPTY" => Some(String::new()),
            "QUOTED" => Some("a\"b\\c\nd' \"\"\" ''' ]\n[x]".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, Vec<String>> {
        expand(text, &env)
    }

    fn one_problem(text: &str) -> String {
        let problems = run(text).expect_err("must fail");
        assert_eq!(problems.len(), 1, "{problems:?}");
        problems[0].clone()
    }

    #[test]
    fn set_variable_is_substituted() {
        assert_eq!(run("redis://${HOST}:6379").expect("ok"), "redis://redis.local:6379");
    }

    #[test]
    fn default_applies_when_unset_or_empty() {
        assert_eq!(run("${NODE:-node-1}").expect("ok"), "node-1");
        assert_eq!(run("${EMPTY:-node-1}").expect("ok"), "node-1");
        assert_eq!(run("${HOST:-node-1}").expect("ok"), "redis.local");
        assert_eq!(run("${NODE:-}").expect("ok"), "");
    }

    #[test]
    fn set_but_empty_without_default_is_empty() {
        assert_eq!(run("a${EMPTY}b").expect("ok"), "ab");
    }

    #[test]
    fn double_dollar_is_a_literal_dollar() {
        assert_eq!(run("cost $$5 and $${HOST}").expect("ok"), "cost $5 and ${HOST}");
        assert_eq!(run("${NODE:-a$$b}").expect("ok"), "a$b");
        assert_eq!(run("lone $ sign, and at the end $").expect("ok"), "lone $ sign, and at the end $");
    }

    #[test]
    fn a_value_is_content_whatever_it_holds() {
        assert_eq!(run("${QUOTED}").expect("ok"), "a\"b\\c\nd' \"\"\" ''' ]\n[x]");
    }

    #[test]
    fn unset_without_default_names_the_variable_and_the_fix() {
        assert_eq!(
            one_problem("x${MISSING_VAR}y"),
            "environment variable MISSING_VAR is not set (write `${MISSING_VAR:-default}` to give a default)"
        );
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(one_problem("${HOST").contains("unterminated"));
        assert!(one_problem("${HOST\n}").contains("unterminated"));
        assert!(one_problem("${1X}").contains("invalid variable name `1X`"));
        assert!(one_problem("${HOST:x}").contains("invalid variable name"));
        assert!(one_problem("${A:-${B}}").contains("nested"));
    }

    #[test]
    fn every_bad_reference_in_a_value_is_reported() {
        assert_eq!(run("${A}-${HOST}-${B}").expect_err("two unset").len(), 2);
    }

    #[test]
    fn the_document_walk_reaches_tables_and_arrays_and_names_each_key() {
        let text = "# ${IN_COMMENT}\nplain = \"${HOST}\"\n[t]\nlist = [\"${HOST}\", \"${NOPE}\"]\n\
                    [[agent]]\nname = \"a\"\n[[agent]]\nname = \"${ALSO_NOPE}\"\n\"${KEY}\" = 1\n";
        let mut doc = DeTable::parse(text).expect("parses");
        let mut issues = Issues::new(Path::new("f.toml"));
        expand_document(doc.get_mut(), &env, &mut issues);
        let err = issues.finish(()).expect_err("two unset").to_string();
        assert!(err.contains("f.toml: t.list[1] = \"${NOPE}\": environment variable NOPE is not set"), "{err}");
        assert!(err.contains("f.toml: agent[1].name = \"${ALSO_NOPE}\": environment variable ALSO_NOPE"), "{err}");
        assert_eq!(err.lines().count(), 2, "comments and keys are not expanded: {err}");
        assert_eq!(doc.get_ref().get("plain").and_then(|v| v.get_ref().as_str()), Some("redis.local"));
    }

    #[test]
    fn values_are_shown_redacted() {
        let mut doc = DeTable::parse("url = \"redis://:hunter2@${NOPE}/0\"").expect("parses");
        let mut issues = Issues::new(Path::new("f.toml"));
        expand_document(doc.get_mut(), &env, &mut issues);
        let err = issues.finish(()).expect_err("unset").to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
