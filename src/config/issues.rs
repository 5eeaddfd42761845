//! What the checks report: one [`Issue`] per invalid value, collected per file in [`Issues`] so one
//! pass names everything wrong with a file.

use super::ConfigError;
use std::fmt;
use std::path::{Path, PathBuf};

/// One invalid value: `<file>: <key> = <value>: <problem>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub file: PathBuf,
    /// Key path, e.g. `bus.redis_url` or `agent[3].concurrency`.
    pub key: String,
    /// The value as written (strings quoted), if there is one.
    pub value: Option<String>,
    pub problem: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.problem)
    }
}

pub(crate) fn display_issues(issues: &[Issue]) -> String {
    issues.iter().map(Issue::to_string).collect::<Vec<_>>().join("\n")
}

/// Collects the issues of one file.
pub(crate) struct Issues {
    file: PathBuf,
    list: Vec<Issue>,
}

impl Issues {
    pub fn new(file: &Path) -> Self {
        Issues { file: file.to_path_buf(), list: Vec::new() }
    }

    pub fn push(&mut self, key: impl Into<String>, value: Option<String>, problem: impl Into<String>) {
        let (file, key, problem) = (self.file.clone(), key.into(), problem.into());
        self.list.push(Issue { file, key, value, problem });
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Append `note` to the problem of every issue from index `from` on whose key does not end in
    /// `except`.
    pub fn annotate_since(&mut self, from: usize, except: &str, note: &str) {
        for issue in self.list.iter_mut().skip(from).filter(|i| !i.key.ends_with(except)) {
            issue.problem.push_str(note);
        }
    }

    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError::Invalid(self.list))
        }
    }
}
