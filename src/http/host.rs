//! The Host check: a request whose `Host` is not in `http.allowed_hosts` is answered 400 before any
//! handler runs. It stops DNS rebinding, where a web page makes a browser send requests to a name that
//! the attacker re-points at 127.0.0.1: the browser then talks to a developer's local node with the
//! attacker's host name in `Host`.
//!
//! An entry is a host (`localhost`, `127.0.0.1`, `[::1]`, `genesis.example.com`: any port) or a host
//! and port (`10.0.0.5:9464`: that port only); `*` accepts every host (for a node behind a proxy that
//! checks it). The default is `localhost`, `127.0.0.1`, `[::1]` and the listen address with its port
//! (when it is not the unspecified `0.0.0.0`/`[::]`). The probes (`/healthz`, `/readyz`) are not
//! checked: load balancers and kubelets send the address they dialled.

use super::error;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

/// One entry of `http.allowed_hosts`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// Lowercase host (IPv6 in brackets) and, if given, the one port.
    Host(String, Option<u16>),
}

impl HostPattern {
    /// Parse an entry (or a `Host` header value): `host`, `host:port`, `[v6]`, `[v6]:port` or `*`.
    pub fn parse(raw: &str) -> Result<HostPattern, &'static str> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(HostPattern::Any);
        }
        let (host, port) = split(raw).ok_or(
            "must be a host name or IP, optionally with :port (e.g. \"localhost\", \"10.0.0.5:9464\", \"[::1]\"), or \"*\"",
        )?;
        Ok(HostPattern::Host(host, port))
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Host(h, p) => h == host && (p.is_none() || *p == port),
        }
    }
}

/// `host[:port]` → (lowercase host, port). A bare IPv6 address must be bracketed.
fn split(raw: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        let (h, p) = match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || ".-_".contains(c);
        if h.is_empty() || !h.chars().all(valid) {
            return None;
        }
        (h.to_string(), p)
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

/// The allowed hosts of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Arc<Vec<HostPattern>>);

impl AllowedHosts {
    /// `configured` (`http.allowed_hosts` as written: it replaces the default), else the default for a
    /// listener on `addr`.
    pub fn resolve(configured: Option<&[HostPattern]>, addr: SocketAddr) -> AllowedHosts {
        if let Some(c) = configured {
            return AllowedHosts(Arc::new(c.to_vec()));
        }
        let mut d: Vec<HostPattern> =
            ["localhost", "127.0.0.1", "[::1]"].iter().map(|h| HostPattern::Host((*h).to_string(), None)).collect();
        if !addr.ip().is_unspecified() {
            let host = match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            d.push(HostPattern::Host(host, Some(addr.port())));
        }
        AllowedHosts(Arc::new(d))
    }

    pub fn allows(&self, host_header: &str) -> bool {
        match split(host_header.trim()) {
            Some((host, port)) => self.0.iter().any(|p| p.allows(&host, port)),
            None => false,
        }
    }
}

/// The middleware: 400 JSON for a request whose Host (HTTP/1) or authority (HTTP/2) is not allowed.
pub async fn check(State(hosts): State<AllowedHosts>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if hosts.allows(&h) => next.run(req).await,
        Some(h) => error(
            StatusCode::BAD_REQUEST,
            format!(
                "Host {:?} is not allowed: add it to http.allowed_hosts (docs/OPERATIONS.md, \"Allowed hosts\")",
                h.chars().take(256).collect::<String>()
            ),
        ),
        None => error(StatusCode::BAD_REQUEST, "the request names no Host"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn the_default_allows_loopback_names_and_the_listen_address() {
        let h = AllowedHosts::resolve(None, addr("127.0.0.1:9464"));
        for ok in ["localhost", "localhost:9464", "LOCALHOST:1", "127.0.0.1:9464", "[::1]:9464", "[::1]"] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:9464", "localhost.evil.example", "", "127.0.0.1:x", "::1"] {
            assert!(!h.allows(bad), "{bad}");
        }
        let h = AllowedHosts::resolve(None, addr("10.0.0.5:9464"));
        assert!(h.allows("10.0.0.5:9464") && !h.allows("10.0.0.5:80"));
        let h = AllowedHosts::resolve(None, addr("0.0.0.0:9464"));
        assert!(!h.allows("0.0.0.0:9464") && h.allows("localhost"));
        let h = AllowedHosts::resolve(None, addr("[fd00::5]:9464"));
        assert!(h.allows("[fd00::5]:9464") && !h.allows("[fd00::5]:1"));
    }

    #[test]
    fn configured_entries_replace_the_default() {
        let c = vec![HostPattern::parse("genesis.example.com").expect("entry")];
        let h = AllowedHosts::resolve(Some(&c), addr("127.0.0.1:9464"));
        assert!(h.allows("genesis.example.com:443") && h.allows("Genesis.Example.Com"));
        assert!(!h.allows("localhost:9464"));
        let any = vec![HostPattern::parse("*").expect("entry")];
        assert!(AllowedHosts::resolve(Some(&any), addr("0.0.0.0:1")).allows("anything.at.all:5"));
    }

    #[test]
    fn entries_are_checked_when_read() {
        assert_eq!(HostPattern::parse("[::1]:80"), Ok(HostPattern::Host("[::1]".into(), Some(80))));
        for bad in ["", "a b", "host:99999", "[nope]", "http://x", "x/y", "::1", "a:b:1"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
