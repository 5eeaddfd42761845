//! `[http]` beyond the listener's limits: `auth`, `allowed_hosts`, `metrics_addr`, `admin_key_file`
//! and the API keys listed in the file (`[[http.api_keys]]`). See docs/OPERATIONS.md, "API keys".

use super::checks::{parse_http_addr, quote};
use super::files::HttpFile;
use super::issues::Issues;
use crate::http::auth::{AuthMode, AuthSettings, ConfiguredKey};
use crate::http::host::HostPattern;
use crate::http::HttpSettings;
use genesis_actors::apikey::{KeyHash, Role};
use genesis_actors::task::TenantId;
use std::net::SocketAddr;

/// The first-run admin key's file of the embedded bus, relative to `genesis.toml`'s directory.
pub(crate) const DEFAULT_ADMIN_KEY_FILE: &str = "admin.key";

/// One `[[http.api_keys]]` entry as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeyFile {
    pub tenant: Option<String>,
    pub role: Option<String>,
    pub key_sha256: Option<String>,
}

/// The `[http]` settings; `admin_key_file` as written (the caller resolves it against the directory).
pub(crate) fn http(file: &HttpFile, addr: Option<SocketAddr>, issues: &mut Issues) -> HttpSettings {
    let mode = match file.auth.as_deref().map(str::trim) {
        None | Some("required") => AuthMode::Required,
        Some("off") => AuthMode::Off,
        Some(other) => {
            issues.push("http.auth", Some(quote(other)), "must be \"required\" or \"off\"");
            AuthMode::Required
        }
    };
    if let (AuthMode::Off, Some(a)) = (mode, addr) {
        if let Err(problem) = check_open(a, "http.addr") {
            issues.push("http.auth", Some(quote("off")), problem);
        }
    }
    let allowed_hosts = file.allowed_hosts.as_ref().map(|hosts| {
        if hosts.is_empty() {
            issues.push("http.allowed_hosts", Some("[]".into()), "must list at least one host (\"*\" allows any)");
        }
        hosts
            .iter()
            .enumerate()
            .filter_map(|(i, h)| match HostPattern::parse(h) {
                Ok(p) => Some(p),
                Err(problem) => {
                    issues.push(format!("http.allowed_hosts[{i}]"), Some(quote(h)), problem);
                    None
                }
            })
            .collect()
    });
    let raw_metrics = file.metrics_addr.clone().unwrap_or_default();
    let metrics_addr = parse_http_addr(&raw_metrics).unwrap_or_else(|problem| {
        issues.push("http.metrics_addr", Some(quote(&raw_metrics)), problem);
        None
    });
    if metrics_addr.is_some() && metrics_addr == addr {
        issues.push("http.metrics_addr", Some(quote(&raw_metrics)), "must differ from http.addr (or be empty)");
    }
    let configured = api_keys(file.api_keys.as_deref().unwrap_or_default(), issues);
    let admin_key_file = file
        .admin_key_file
        .clone()
        .filter(|f| !f.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_KEY_FILE.to_string());
    HttpSettings {
        auth: AuthSettings { mode, configured },
        allowed_hosts,
        metrics_addr,
        admin_key_file: admin_key_file.into(),
    }
}

/// `http.auth = "off"` is allowed on a loopback address only: anyone who can reach another address
/// would be an admin. `key` names where the address was set.
pub(crate) fn check_open(addr: SocketAddr, key: &str) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "is allowed only on a loopback address, and {key} is {addr}: set http.auth = \"required\" (the \
             default) and use API keys, or listen on 127.0.0.1"
        ))
    }
}

fn api_keys(entries: &[ApiKeyFile], issues: &mut Issues) -> Vec<ConfiguredKey> {
    let mut out: Vec<ConfiguredKey> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |field: &str| format!("http.api_keys[{i}].{field}");
        let tenant = match e.tenant.as_deref().map(TenantId::parse) {
            Some(Ok(t)) => Some(t),
            Some(Err(err)) => {
                issues.push(at("tenant"), e.tenant.as_deref().map(quote), err.to_string());
                None
            }
            None => {
                issues.push(at("tenant"), None, "is required: the tenant this key acts for");
                None
            }
        };
        let role = match e.role.as_deref().map(|r| Role::parse(r.trim()).ok_or(r)) {
            None => Some(Role::Tenant),
            Some(Ok(r)) => Some(r),
            Some(Err(r)) => {
                issues.push(at("role"), Some(quote(r)), "must be \"tenant\" or \"admin\"");
                None
            }
        };
        let sha256 = match e.key_sha256.as_deref().map(|h| KeyHash::from_hex(h.trim()).ok_or(h)) {
            Some(Ok(h)) => Some(h),
            Some(Err(h)) => {
                let problem = "must be the SHA-256 of the key, 64 hex digits (`genesis apikey create --print-config`)";
                issues.push(at("key_sha256"), Some(quote(h)), problem);
                None
            }
            None => {
                issues.push(at("key_sha256"), None, "is required (`genesis apikey create --print-config` prints it)");
                None
            }
        };
        if let Some(h) = &sha256 {
            if let Some(first) = out.iter().find(|k| k.sha256.matches(h)) {
                issues.push(at("key_sha256"), None, format!("is the same key as {}", first.source));
            }
        }
        if let (Some(tenant), Some(role), Some(sha256)) = (tenant, role, sha256) {
            out.push(ConfiguredKey { source: format!("http.api_keys[{i}]"), tenant, role, sha256 });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::http::auth::AuthMode;
    use std::path::Path;

    fn load(http: &str) -> Result<crate::http::HttpSettings, String> {
        let text = format!("[http]\n{http}\n");
        super::super::genesis_from_str(Path::new("genesis.toml"), &text, &|_| None)
            .map(|p| p.http)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keys_are_required_by_default_and_listed_keys_are_checked_by_name() {
        let d = load("").expect("defaults");
        assert_eq!((d.auth.mode, d.auth.configured.len(), d.metrics_addr), (AuthMode::Required, 0, None));
        assert_eq!(d.admin_key_file, Path::new("admin.key"));
        let sha = "ab".repeat(32);
        let ok = load(&format!(
            "[[http.api_keys]]\ntenant = \"acme\"\nkey_sha256 = \"{sha}\"\n[[http.api_keys]]\ntenant = \"ops\"\nrole = \"admin\"\nkey_sha256 = \"{}\"",
            "cd".repeat(32)
        ))
        .expect("two keys");
        assert_eq!(ok.auth.configured.len(), 2);
        assert_eq!(ok.auth.configured[0].role, genesis_actors::apikey::Role::Tenant, "role defaults to tenant");
        assert_eq!(ok.auth.configured[1].source, "http.api_keys[1]");
        let err = load(&format!(
            "[[http.api_keys]]\ntenant = \"a b\"\nrole = \"root\"\nkey_sha256 = \"xyz\"\n[[http.api_keys]]\n\
             [[http.api_keys]]\ntenant = \"t\"\nkey_sha256 = \"{sha}\"\n[[http.api_keys]]\ntenant = \"u\"\nkey_sha256 = \"{sha}\""
        ))
        .expect_err("refused");
        for want in [
            "http.api_keys[0].tenant = \"a b\"",
            "http.api_keys[0].role = \"root\": must be \"tenant\" or \"admin\"",
            "http.api_keys[0].key_sha256 = \"xyz\": must be the SHA-256",
            "http.api_keys[1].tenant: is required",
            "http.api_keys[1].key_sha256: is required",
            "http.api_keys[3].key_sha256: is the same key as http.api_keys[2]",
        ] {
            assert!(err.contains(want), "{want} in\n{err}");
        }
    }

    #[test]
    fn auth_off_only_on_loopback_and_the_other_keys_checked() {
        assert_eq!(load("auth = \"off\"").expect("loopback").auth.mode, AuthMode::Off);
        let err = load("addr = \"0.0.0.0:9464\"\nauth = \"off\"").expect_err("refused");
        assert!(
            err.contains("http.auth = \"off\": is allowed only on a loopback address, and http.addr is 0.0.0.0:9464"),
            "{err}"
        );
        let err = load("auth = \"maybe\"\nallowed_hosts = []\nmetrics_addr = \"127.0.0.1:9464\"").expect_err("refused");
        for want in [
            "http.auth = \"maybe\": must be \"required\" or \"off\"",
            "http.allowed_hosts = []: must list at least one host",
            "http.metrics_addr = \"127.0.0.1:9464\": must differ from http.addr",
        ] {
            assert!(err.contains(want), "{want} in\n{err}");
        }
        let err = load("allowed_hosts = [\"ok.example\", \"bad host\"]\nmetrics_addr = \"nope\"").expect_err("refused");
        assert!(
            err.contains("http.allowed_hosts[1] = \"bad host\"") && err.contains("http.metrics_addr = \"nope\""),
            "{err}"
        );
        let s = load("allowed_hosts = [\"*\"]\nmetrics_addr = \"127.0.0.1:9565\"").expect("valid");
        assert_eq!(s.metrics_addr, "127.0.0.1:9565".parse().ok());
    }
}
