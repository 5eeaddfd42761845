//! Where Redis is and how to log in: the URL (standalone, Sentinel or Cluster), TLS files and the
//! password, parsed and checked once at start so a bad value is a clear error naming its key instead of
//! an endless "cannot reach Redis".
//!
//! URL forms:
//! - `redis://[user:pass@]host:port[/db]`, `rediss://…` (TLS), `unix:///path.sock[?db=N&pass=…]`
//! - `redis+sentinel://[user:pass@]host:port[,host:port…]/<master-name>[/db]` (`rediss+sentinel://`: TLS)
//! - `redis+cluster://[user:pass@]host:port[,host:port…]` (seed nodes; `rediss+cluster://`: TLS)

use crate::secret::{redact_url, ExposeSecret, Secret};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// What `[bus]` says about reaching Redis.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    pub url: Option<Secret>,
    /// PEM file of the CA that signed the server's certificate (a private CA); without it the
    /// system's roots are trusted.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for mutual TLS. Both or neither.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// A file holding the password (trailing newline ignored), so the secret need not sit in a URL.
    pub password_file: Option<PathBuf>,
}

impl PartialEq for RedisOptions {
    fn eq(&self, other: &Self) -> bool {
        self.url.as_ref().map(|u| u.expose_secret().to_string())
            == other.url.as_ref().map(|u| u.expose_secret().to_string())
            && self.tls_ca_file == other.tls_ca_file
            && self.tls_cert_file == other.tls_cert_file
            && self.tls_key_file == other.tls_key_file
            && self.password_file == other.password_file
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    Sentinel,
    Cluster,
}

/// The URL's parts, before any file is read. Pure, so every form is unit-tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUrl {
    pub topology: Topology,
    pub tls: bool,
    /// Sentinels (Sentinel) or seed nodes (Cluster); empty for standalone (the URL is used as is).
    pub nodes: Vec<(String, u16)>,
    /// Sentinel's master name.
    pub master: Option<String>,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A configuration problem, naming the key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: {problem}")]
pub struct TargetError {
    pub key: &'static str,
    /// The value as written, redacted.
    pub value: String,
    pub problem: String,
}

fn err(key: &'static str, value: impl Into<String>, problem: impl Into<String>) -> TargetError {
    TargetError { key, value: value.into(), problem: problem.into() }
}

pub fn parse_url(url: &str) -> Result<ParsedUrl, String> {
    let (scheme, rest) = url.split_once("://").ok_or("must start with a scheme such as redis:// or rediss://")?;
    let (topology, tls) = match scheme {
        "redis" | "unix" | "redis+unix" => (Topology::Standalone, false),
        "rediss" => (Topology::Standalone, true),
        "redis+sentinel" => (Topology::Sentinel, false),
        "rediss+sentinel" => (Topology::Sentinel, true),
        "redis+cluster" => (Topology::Cluster, false),
        "rediss+cluster" => (Topology::Cluster, true),
        _ => {
            return Err("must start with redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, \
                        redis+cluster:// or rediss+cluster://"
                .into())
        }
    };
    let base = ParsedUrl { topology, tls, nodes: Vec::new(), master: None, db: 0, username: None, password: None };
    if topology == Topology::Standalone {
        return Ok(base);
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let user = Some(percent_decode(user)?).filter(|s| !s.is_empty());
            let pass = Some(percent_decode(pass)?).filter(|s| !s.is_empty());
            (user, pass)
        }
    };
    let mut nodes = Vec::new();
    for h in hosts.split(',').filter(|h| !h.is_empty()) {
        nodes.push(host_port(h)?);
    }
    if nodes.is_empty() {
        return Err("names no host: list host:port[,host:port…] after the scheme".into());
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let (master, db) = match topology {
        Topology::Sentinel => {
            let master = segments.next().ok_or("names no master: end the URL with /<master-name>")?;
            let db = segments.next().map(parse_db).transpose()?.unwrap_or(0);
            (Some(master.to_string()), db)
        }
        _ => {
            if let Some(extra) = segments.next() {
                return Err(format!(
                    "has a path `/{extra}`: a cluster URL lists seed nodes only (Redis Cluster has only db 0)"
                ));
            }
            (None, 0)
        }
    };
    if segments.next().is_some() {
        return Err("has more path segments than /<master-name>/<db>".into());
    }
    Ok(ParsedUrl { nodes, master, db, username, password, ..base })
}

fn host_port(h: &str) -> Result<(String, u16), String> {
    let (host, port) = h.rsplit_once(':').ok_or_else(|| format!("`{h}` needs a port (host:port)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("`{h}` has no host"));
    }
    let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{h}`: port must be 1-65535"))?;
    Ok((host.to_string(), port))
}

fn parse_db(s: &str) -> Result<i64, String> {
    s.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| format!("db `{s}` must be a number ≥ 0"))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or("has a broken %-escape in its user info")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "has a broken %-escape in its user info")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "user info is not UTF-8 after %-decoding".into())
}

/// Everything needed to open connections, with the files already read and checked.
#[derive(Clone)]
pub struct RedisTarget {
    pub parsed: ParsedUrl,
    /// The URL as given (standalone connections are opened from it).
    pub url: Secret,
    /// The password: from `password_file`, else from the URL.
    pub password: Option<Secret>,
    pub certs: Option<redis::TlsCertificates>,
    /// The URL for logs and `/readyz`, without secrets.
    pub shown: String,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget").field("url", &self.shown).finish_non_exhaustive()
    }
}

impl RedisTarget {
    /// Parse the URL and read the TLS and password files. `url_key` names where the URL came from
    /// (`bus.redis_url` or `--redis-url`).
    pub fn resolve(opts: &RedisOptions, url_key: &'static str) -> Result<RedisTarget, TargetError> {
        let url = opts.url.clone().ok_or_else(|| err(url_key, "\"\"", "no Redis URL given"))?;
        let raw = url.expose_secret();
        let shown = redact_url(raw);
        let parsed = parse_url(raw).map_err(|p| err(url_key, format!("\"{shown}\""), p))?;
        if parsed.topology == Topology::Standalone {
            use redis::IntoConnectionInfo;
            raw.into_connection_info()
                .map_err(|e| err(url_key, format!("\"{shown}\""), crate::secret::scrub(&e.to_string(), raw)))?;
        }
        let url_password = match parsed.topology {
            Topology::Standalone => standalone_password(raw),
            _ => parsed.password.clone(),
        };
        let password = match &opts.password_file {
            Some(path) => {
                if url_password.is_some() {
                    return Err(err(
                        "bus.password_file",
                        quote_path(path),
                        format!("{url_key} has a password too; keep the secret in one place (remove it from the URL)"),
                    ));
                }
                Some(Secret::from(read_password(path)?))
            }
            None => url_password.map(Secret::from),
        };
        let certs = tls_certificates(opts, parsed.tls, url_key)?;
        Ok(RedisTarget { parsed, url, password, certs, shown })
    }

    pub fn topology(&self) -> Topology {
        self.parsed.topology
    }
}

fn standalone_password(raw: &str) -> Option<String> {
    use redis::IntoConnectionInfo;
    raw.into_connection_info().ok().and_then(|i| i.redis_settings().password().map(str::to_string))
}

fn quote_path(p: &Path) -> String {
    format!("\"{}\"", p.display())
}

fn read_password(path: &Path) -> Result<String, TargetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("bus.password_file", quote_path(path), format!("cannot read it: {e}")))?;
    let pw = text.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err(err("bus.password_file", quote_path(path), "is empty; write the password into it"));
    }
    Ok(pw)
}

fn tls_certificates(
    opts: &RedisOptions,
    tls: bool,
    url_key: &'static str,
) -> Result<Option<redis::TlsCertificates>, TargetError> {
    let any = opts.tls_ca_file.is_some() || opts.tls_cert_file.is_some() || opts.tls_key_file.is_some();
    if !any {
        return Ok(None);
    }
    if !tls {
        let key = if opts.tls_ca_file.is_some() { "bus.tls_ca_file" } else { "bus.tls_cert_file" };
        let path = opts.tls_ca_file.as_ref().or(opts.tls_cert_file.as_ref()).or(opts.tls_key_file.as_ref());
        return Err(err(
            key,
            path.map(|p| quote_path(p)).unwrap_or_default(),
            format!("TLS files are set but {url_key} does not use TLS: use rediss:// (or rediss+sentinel://, rediss+cluster://)"),
        ));
    }
    let root_cert = match &opts.tls_ca_file {
        Some(p) => {
            let pem = read_file("bus.tls_ca_file", p)?;
            let n = CertificateDer::pem_slice_iter(&pem).filter(|c| c.is_ok()).count();
            if n == 0 {
                return Err(err(
                    "bus.tls_ca_file",
                    quote_path(p),
                    "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&opts.tls_cert_file, &opts.tls_key_file) {
        (None, None) => None,
        (Some(c), None) => {
            return Err(err(
                "bus.tls_key_file",
                "\"\"",
                format!("bus.tls_cert_file = {} needs its key: set bus.tls_key_file", quote_path(c)),
            ))
        }
        (None, Some(k)) => {
            return Err(err(
                "bus.tls_cert_file",
                "\"\"",
                format!("bus.tls_key_file = {} needs its certificate: set bus.tls_cert_file", quote_path(k)),
            ))
        }
        (Some(c), Some(k)) => {
            let cert = read_file("bus.tls_cert_file", c)?;
            if CertificateDer::from_pem_slice(&cert).is_err() {
                return Err(err("bus.tls_cert_file", quote_path(c), "holds no PEM certificate"));
            }
            let key = read_file("bus.tls_key_file", k)?;
            if PrivateKeyDer::from_pem_slice(&key).is_err() {
                return Err(err(
                    "bus.tls_key_file",
                    quote_path(k),
                    "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                ));
            }
            Some(redis::ClientTlsConfig { client_cert: cert, client_key: key })
        }
    };
    Ok(Some(redis::TlsCertificates { client_tls, root_cert }))
}

fn read_file(key: &'static str, p: &Path) -> Result<Vec<u8>, TargetError> {
    std::fs::read(p).map_err(|e| err(key, quote_path(p), format!("cannot read it: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_urls_pass_through() {
        let p = parse_url("rediss://default:pw@h:6380/0").unwrap();
        assert_eq!((p.topology, p.tls), (Topology::Standalone, true));
        assert_eq!(parse_url("unix:///run/r.sock").unwrap().topology, Topology::Standalone);
    }

    #[test]
    fn sentinel_url() {
        let p = parse_url("redis+sentinel://u:p%40ss@a:26379,b:26380/mymaster/2").unwrap();
        assert_eq!(p.topology, Topology::Sentinel);
        assert_eq!(p.nodes, vec![("a".into(), 26379), ("b".into(), 26380)]);
        assert_eq!(p.master.as_deref(), Some("mymaster"));
        assert_eq!(p.db, 2);
        assert_eq!((p.username.as_deref(), p.password.as_deref()), (Some("u"), Some("p@ss")));
        assert!(parse_url("rediss+sentinel://a:1/m").unwrap().tls);
    }

    #[test]
    fn cluster_url() {
        let p = parse_url("rediss+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000").unwrap();
        assert_eq!((p.topology, p.tls), (Topology::Cluster, true));
        assert_eq!(p.nodes.len(), 2);
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(p.username, None);
        assert_eq!(parse_url("redis+cluster://[::1]:7000/").unwrap().nodes, vec![("::1".into(), 7000)]);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(parse_url("http://x").unwrap_err().contains("must start with"));
        assert!(parse_url("redis+sentinel://a:1").unwrap_err().contains("master"));
        assert!(parse_url("redis+sentinel:///m").unwrap_err().contains("no host"));
        assert!(parse_url("redis+cluster://a").unwrap_err().contains("port"));
        assert!(parse_url("redis+cluster://a:0").unwrap_err().contains("1-65535"));
        assert!(parse_url("redis+cluster://a:1/3").unwrap_err().contains("seed nodes only"));
        assert!(parse_url("redis+sentinel://a:1/m/x").unwrap_err().contains("db"));
    }

    fn opts(url: &str) -> RedisOptions {
        RedisOptions { url: Some(Secret::from(url.to_string())), ..Default::default() }
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = RedisTarget::resolve(&opts("redis+sentinel://u:hunter2@a:1"), "bus.redis_url").unwrap_err();
        assert_eq!(e.key, "bus.redis_url");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn password_in_one_place_only() {
        let dir = std::env::temp_dir().join(format!("genesis-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let mut o = opts("redis://h:1/");
        o.password_file = Some(f.clone());
        let t = RedisTarget::resolve(&o, "bus.redis_url").unwrap();
        assert_eq!(t.password.as_ref().map(|p| p.expose_secret().to_string()).as_deref(), Some("s3cret"));
        let mut both = opts("redis://:x@h:1/");
        both.password_file = Some(f);
        assert_eq!(RedisTarget::resolve(&both, "bus.redis_url").unwrap_err().key, "bus.password_file");
        let mut missing = opts("redis://h:1/");
        missing.password_file = Some(dir.join("nope"));
        assert!(RedisTarget::resolve(&missing, "bus.redis_url").unwrap_err().problem.contains("cannot read"));
    }

    #[test]
    fn tls_files_need_tls_and_must_parse() {
        let dir = std::env::temp_dir().join(format!("genesis-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let mut o = opts("redis://h:1/");
        o.tls_ca_file = Some(junk.clone());
        assert!(RedisTarget::resolve(&o, "bus.redis_url").unwrap_err().problem.contains("does not use TLS"));
        let mut o = opts("rediss://h:1/");
        o.tls_ca_file = Some(junk.clone());
        let e = RedisTarget::resolve(&o, "bus.redis_url").unwrap_err();
        assert_eq!(e.key, "bus.tls_ca_file");
        let mut o = opts("rediss://h:1/");
        o.tls_cert_file = Some(junk);
        assert_eq!(RedisTarget::resolve(&o, "bus.redis_url").unwrap_err().key, "bus.tls_key_file");
    }
}
