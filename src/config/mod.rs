//! Configuration: `config/genesis.toml` (runtime settings) and the roster file it names
//! (`config/agents.toml` by default), found, read, expanded, parsed and validated into the runtime's
//! types.
//!
//! Stages, in the order [`load`] runs them: [`locate`] (which file), [`files`] (the shapes as
//! written), [`expand`] (`${VAR}`, `${VAR:-default}` and `$$` in string values), [`issues`] and
//! [`checks`] (value checks that report every problem at once), then the sections ([`validate`] for
//! `genesis.toml`, [`payments`], [`workflows`], [`roster`]); this module runs them and checks what spans both
//! files. No stage imports a later one, except that [`files`] takes the shape of `[payments]` from
//! [`payments`], where it lives with its checks.
//!
//! Every key is optional; unknown keys are errors. Errors name the file, the key, the value and the
//! problem, e.g. `config/agents.toml: agent[3].concurrency = 0: must be between 1 and 10000`
//! (`agent[i]` counts `[[agent]]` entries from 0).

mod checks;
mod executor;
mod expand;
mod files;
mod http;
mod issues;
mod locate;
mod payments;
mod roster;
#[cfg(test)]
mod tests;
mod validate;
mod workflows;

use expand::Env;
pub use issues::Issue;
use issues::Issues;
pub use locate::locate;
pub use validate::{OtlpProtocol, TelemetrySettings};

use genesis_actors::roster::Roster;
use genesis_actors::settings::RuntimeSettings;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The validated configuration of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub settings: RuntimeSettings,
    pub roster: Roster,
    /// `bus.redis_url` (a secret: it may hold a password), TLS files and password file; no URL means
    /// the embedded in-process bus.
    pub redis: genesis_actors::connection::RedisOptions,
    /// `bus.publish_replicas`, `bus.publish_timeout`.
    pub replication: genesis_actors::bus::redis::Replication,
    /// `http.addr`; `None` means no HTTP listener.
    pub http_addr: Option<SocketAddr>,
    /// `http.header_read_timeout`, `http.request_timeout`, `http.max_connections`.
    pub http_limits: crate::http::server::Limits,
    /// `http.auth`, `http.allowed_hosts`, `http.metrics_addr`, `[[http.api_keys]]`, and
    /// `http.admin_key_file` resolved against `genesis.toml`'s directory.
    pub http: crate::http::HttpSettings,
    /// `[payments]`, tied to the roster.
    pub payments: genesis_actors::payments::PaymentsSettings,
    /// `[telemetry]`.
    pub telemetry: TelemetrySettings,
    /// `[executors.simulated] steering`: the simulated executor honours `pay` and `report_to`.
    pub simulated_steering: bool,
    /// The `genesis.toml` that was loaded.
    pub source: PathBuf,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    /// None of the places a configuration file may be in holds one.
    #[error(
        "no configuration file: pass --config FILE, set GENESIS_CONFIG, or put one at {} \
         (start from the shipped config/genesis.toml and config/agents.toml)",
        locate::show(searched)
    )]
    NotFound { searched: Vec<PathBuf> },
    /// TOML syntax, a wrong type or an unknown key; `message` is toml's (with line and column).
    #[error("{}: {}{message}", path.display(), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Syntax { path: PathBuf, key: Option<String>, message: String },
    /// An invalid value given outside the files (e.g. a command-line flag).
    #[error("{key} = {value}: {problem}")]
    Value { key: String, value: String, problem: String },
    /// One or more invalid values (one per line when displayed).
    #[error("{}", issues::display_issues(.0))]
    Invalid(Vec<Issue>),
}

/// Load `genesis.toml` at `path` and the roster file it names (key `roster`, relative to the
/// directory of `genesis.toml`, default `agents.toml`). `known_executors` lists the valid values
/// of an agent's `executor`.
pub fn load(path: &Path, known_executors: &[&str]) -> Result<ServiceConfig, ConfigError> {
    load_with_env(path, known_executors, &|name| std::env::var(name).ok())
}

/// Check a node id given outside `genesis.toml` (e.g. `--node-id`), with the same rules as
/// `node.id`; `key` names where it came from in the error.
pub fn validate_node_id(key: &str, id: &str) -> Result<String, ConfigError> {
    checks::check_node_id(id).map(|()| id.to_string()).map_err(|problem| value_error(key, id, problem))
}

/// `http.auth = "off"` on `addr` given outside `genesis.toml` (`key`, e.g. `--http-addr`): refused
/// unless loopback, as in the file.
pub fn check_open_auth(addr: SocketAddr, key: &str) -> Result<(), ConfigError> {
    http::check_open(addr, key).map_err(|problem| ConfigError::Value {
        key: "http.auth".into(),
        value: checks::quote("off"),
        problem,
    })
}

/// Check an HTTP address given outside `genesis.toml` (`--http-addr`), with the same rules as
/// `http.addr` (empty disables HTTP).
pub fn validate_http_addr(key: &str, addr: &str) -> Result<Option<SocketAddr>, ConfigError> {
    checks::parse_http_addr(addr).map_err(|problem| value_error(key, addr, problem))
}

fn value_error(key: &str, value: &str, problem: &str) -> ConfigError {
    ConfigError::Value { key: key.to_string(), value: checks::quote(value), problem: problem.to_string() }
}

/// [`load`] with an injectable environment.
pub(crate) fn load_with_env(path: &Path, known_executors: &[&str], env: Env) -> Result<ServiceConfig, ConfigError> {
    let genesis = genesis_from_str(path, &read(path)?, env)?;
    let roster_path = match path.parent() {
        Some(dir) => dir.join(&genesis.roster),
        None => PathBuf::from(&genesis.roster),
    };
    let roster = roster_from_str(&roster_path, &read(&roster_path)?, known_executors, env)?;
    let mut payments = genesis.payments;
    let mut issues = Issues::new(path);
    let agents: std::collections::BTreeSet<String> = roster.agents.iter().map(|a| a.name.clone()).collect();
    workflows::check_routes(&genesis.settings.workflows, &agents, &mut issues);
    payments::check_agents(&mut payments, agents, &mut issues);
    let redis = redis_options(path, &genesis.redis_url, &genesis.redis_files, &mut issues);
    let dir = path.parent().unwrap_or(Path::new("."));
    payments.token_key = payments::token_key(dir, genesis.token_key_file.as_deref(), env, &mut issues);
    let mut settings = genesis.settings;
    let templates = templates(&dir.join(&genesis.templates_dir), &roster, &settings.workflows, &mut issues);
    settings.workflows.templates = std::sync::Arc::new(templates);
    let mut http = genesis.http;
    http.admin_key_file = dir.join(&http.admin_key_file);
    let payments = issues.finish(payments)?;
    Ok(ServiceConfig {
        settings,
        roster,
        redis,
        replication: genesis.replication,
        http_addr: genesis.http_addr,
        http_limits: genesis.http_limits,
        http,
        payments,
        telemetry: genesis.telemetry,
        simulated_steering: genesis.simulated_steering,
        source: path.to_path_buf(),
    })
}

/// The workflow templates in `dir` (`workflows.templates_dir`), each validated against the roster and
/// the routes now (so `config check` names a template step that names no agent).
fn templates(
    dir: &Path,
    roster: &genesis_actors::roster::Roster,
    ws: &genesis_actors::workflow::WorkflowSettings,
    issues: &mut Issues,
) -> genesis_actors::workflow::template::Templates {
    use genesis_actors::workflow::{route::Fleet, template::Templates, validate::validate};
    let at = dir.to_path_buf();
    let templates = match Templates::load_dir(&at) {
        Ok(t) => t,
        Err(e) => {
            issues.push("workflows.templates_dir", Some(at.display().to_string()), e.to_string());
            return Templates::default();
        }
    };
    let fleet = Fleet { agents: roster.agents.iter().map(|a| a.name.clone()).collect(), depth: Default::default() };
    for name in templates.names() {
        let checked = templates
            .instantiate(name, &serde_json::json!({}))
            .map_err(|e| e.to_string())
            .and_then(|plan| validate(&plan, &ws.limits, &ws.routes, &fleet, None).map_err(|e| e.to_string()));
        if let Err(problem) = checked {
            let file = at.join(format!("{name}.toml")).display().to_string();
            issues.push("workflows (template)", Some(file), problem);
        }
    }
    templates
}

/// The Redis settings, with file paths relative to `genesis.toml`'s directory, checked now (files
/// exist and parse, the URL's form, one password) so `config check` and `serve` report them at once.
fn redis_options(
    path: &Path,
    url: &Option<String>,
    files: &validate::RedisFiles,
    issues: &mut Issues,
) -> genesis_actors::connection::RedisOptions {
    let dir = path.parent().unwrap_or(Path::new("."));
    let at = |p: &Option<String>| p.as_ref().map(|p| dir.join(p));
    let opts = genesis_actors::connection::RedisOptions {
        url: url.clone().map(Into::into),
        tls_ca_file: at(&files.tls_ca_file),
        tls_cert_file: at(&files.tls_cert_file),
        tls_key_file: at(&files.tls_key_file),
        password_file: at(&files.password_file),
    };
    let parses = url.as_deref().is_some_and(|u| genesis_actors::connection::target::parse_url(u).is_ok());
    if parses {
        if let Err(e) = genesis_actors::connection::RedisTarget::resolve(&opts, "bus.redis_url") {
            issues.push(e.key, Some(e.value), e.problem);
        }
    }
    opts
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_path_buf(), error })
}

/// Validate the text of a `genesis.toml`; `path` is only used in messages.
pub(crate) fn genesis_from_str(path: &Path, text: &str, env: Env) -> Result<validate::GenesisParts, ConfigError> {
    let file: files::GenesisFile = parse(path, text, env)?;
    let mut issues = Issues::new(path);
    let parts = validate::genesis(file, &mut issues);
    issues.finish(parts)
}

/// Validate the text of a roster file; `path` is only used in messages.
pub(crate) fn roster_from_str(
    path: &Path,
    text: &str,
    known_executors: &[&str],
    env: Env,
) -> Result<Roster, ConfigError> {
    let file: files::AgentsFile = parse(path, text, env)?;
    let mut issues = Issues::new(path);
    let roster = roster::roster(file, known_executors, &mut issues);
    issues.finish(roster)
}

/// Parse, expand `${VAR}` in string values, then deserialize into the file's shape. A wrong type or
/// an unknown key is named by its path (`agent[2].timeout`) from `serde_path_to_error`; toml's message
/// quotes the line as written.
fn parse<T: DeserializeOwned>(path: &Path, text: &str, env: Env) -> Result<T, ConfigError> {
    // Spans point into `text`: toml's snippet shows the line as written, never an expanded value.
    let message = |mut error: toml::de::Error| {
        error.set_input(Some(text));
        error.to_string().trim_end().to_string()
    };
    let mut doc = toml::de::DeTable::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        key: e.span().and_then(|span| key_path_at(text, span.start)),
        message: message(e),
    })?;
    let mut issues = Issues::new(path);
    let expanded = expand::expand_document(doc.get_mut(), env, &mut issues);
    issues.finish(())?;
    serde_path_to_error::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
        let key = e.path().to_string();
        let message = expanded.hide_in(&key, &message(e.into_inner()));
        ConfigError::Syntax { path: path.to_path_buf(), key: Some(key).filter(|k| k != "."), message }
    })
}

/// Best-effort key path (`bus.block`, `agent[2].timeout`) of the line holding byte `offset`, for a
/// syntax error (there is no document yet to take the path from), from the table headers above it and
/// the key on that line.
fn key_path_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text.get(offset..)?.find('\n').map_or(text.len(), |i| offset + i);
    let mut table = String::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    for line in text.get(..line_end)?.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            let count = arrays.entry(name.trim().to_string()).or_insert(0);
            table = format!("{}[{count}]", name.trim());
            *count += 1;
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.trim().to_string();
        }
    }
    let line = text.get(line_start..line_end)?.trim();
    if line.starts_with('[') {
        return (!table.is_empty()).then_some(table);
    }
    let key = line.split_once('=')?.0.trim();
    match (key.is_empty(), table.is_empty()) {
        (true, _) => None,
        (false, true) => Some(key.to_string()),
        (false, false) => Some(format!("{table}.{key}")),
    }
}
