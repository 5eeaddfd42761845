//! The agent card (`<endpoint>/.well-known/agent-card.json`) and the one thing Genesis takes from it:
//! where and how to call the agent.
//!
//! A 1.0 card has no top-level `url`: each `supportedInterfaces[]` entry names its own `url`,
//! `protocolBinding` and `protocolVersion`. Genesis speaks JSON-RPC, so it takes the first `JSONRPC`
//! interface of protocol version 1.x (the card's order is the agent's preference; an entry without a
//! version is taken as 1.0) and posts to its `url` exactly.

use serde::Deserialize;

/// The card's path under the agent's base URL.
pub const WELL_KNOWN: &str = "/.well-known/agent-card.json";

/// What the card says, as far as Genesis reads it (unknown fields are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub supported_interfaces: Vec<AgentInterface>,
    #[serde(default)]
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub streaming: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInterface {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub protocol_binding: String,
    #[serde(default)]
    pub protocol_version: String,
    /// The hosting tenant to name in requests to this interface.
    #[serde(default)]
    pub tenant: String,
}

/// How to call the agent, from its card.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    /// The JSON-RPC endpoint (the chosen interface's `url`).
    pub rpc_url: String,
    /// `capabilities.streaming`: follow tasks with `SendStreamingMessage` instead of polling.
    pub streaming: bool,
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CardError {
    #[error("the card lists no interface (`supportedInterfaces` is empty or missing)")]
    NoInterfaces,
    #[error(
        "the card offers no JSONRPC interface for A2A 1.x (it offers: {offered}); Genesis speaks A2A 1.0 over JSON-RPC"
    )]
    NoJsonRpc { offered: String },
    #[error("the JSONRPC interface's url {url:?} is not an http(s) URL")]
    BadUrl { url: String },
}

/// The card's URL for the agent's base URL `endpoint`.
pub fn card_url(endpoint: &str) -> String {
    format!("{}{WELL_KNOWN}", endpoint.trim_end_matches('/'))
}

/// Choose the interface to call (pure). A relative interface URL is resolved against the card's URL.
pub fn target(card: &AgentCard, card_url: &str) -> Result<Target, CardError> {
    if card.supported_interfaces.is_empty() {
        return Err(CardError::NoInterfaces);
    }
    let is_v1 = |v: &str| v.is_empty() || v == "1" || v.starts_with("1.");
    let chosen = card
        .supported_interfaces
        .iter()
        .find(|i| i.protocol_binding.eq_ignore_ascii_case("JSONRPC") && is_v1(i.protocol_version.trim()))
        .ok_or_else(|| CardError::NoJsonRpc {
            offered: card
                .supported_interfaces
                .iter()
                .map(|i| format!("{} {}", i.protocol_binding, i.protocol_version).trim().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let bad = || CardError::BadUrl { url: chosen.url.clone() };
    let url = reqwest::Url::parse(&chosen.url)
        .or_else(|_| reqwest::Url::parse(card_url).and_then(|base| base.join(&chosen.url)))
        .map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(Target {
        name: card.name.clone(),
        rpc_url: url.to_string(),
        streaming: card.capabilities.streaming.unwrap_or(false),
        tenant: Some(chosen.tenant.trim()).filter(|t| !t.is_empty()).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card(v: serde_json::Value) -> AgentCard {
        serde_json::from_value(v).expect("a card")
    }

    #[test]
    fn the_test_agents_card_gives_its_jsonrpc_url() {
        let c = card(json!({"name": "genesis-test-agent",
            "supportedInterfaces": [{"url": "http://127.0.0.1:37851/a2a/jsonrpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
            "capabilities": {"streaming": true, "pushNotifications": false}, "skills": []}));
        let t = target(&c, "http://127.0.0.1:37851/.well-known/agent-card.json").expect("a target");
        assert_eq!(t.rpc_url, "http://127.0.0.1:37851/a2a/jsonrpc");
        assert!(t.streaming);
        assert_eq!(t.tenant, None);
    }

    #[test]
    fn the_first_jsonrpc_1x_interface_wins_over_other_bindings_and_versions() {
        let c = card(json!({"supportedInterfaces": [
            {"url": "https://a/rest", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"},
            {"url": "https://a/old", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            {"url": "https://a/rpc", "protocolBinding": "jsonrpc", "protocolVersion": "1.0", "tenant": "t1"},
            {"url": "https://a/rpc2", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}]}));
        let t = target(&c, "https://a/.well-known/agent-card.json").expect("a target");
        assert_eq!((t.rpc_url.as_str(), t.tenant.as_deref(), t.streaming), ("https://a/rpc", Some("t1"), false));
    }

    #[test]
    fn a_relative_url_is_resolved_against_the_card() {
        let c = card(json!({"supportedInterfaces": [{"url": "/a2a", "protocolBinding": "JSONRPC"}]}));
        assert_eq!(
            target(&c, "http://h:1/base/.well-known/agent-card.json").map(|t| t.rpc_url),
            Ok("http://h:1/a2a".into())
        );
    }

    #[test]
    fn cards_without_a_usable_interface_are_refused_with_what_they_offer() {
        assert_eq!(target(&card(json!({"name": "x"})), "http://h/"), Err(CardError::NoInterfaces));
        let c = card(json!({"supportedInterfaces": [{"url": "u", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
            {"url": "u", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}]}));
        assert_eq!(target(&c, "http://h/"), Err(CardError::NoJsonRpc { offered: "GRPC 1.0, JSONRPC 0.3".into() }));
        let c = card(json!({"supportedInterfaces": [{"url": "ftp://h/x", "protocolBinding": "JSONRPC"}]}));
        assert!(matches!(target(&c, "http://h/"), Err(CardError::BadUrl { .. })));
    }

    #[test]
    fn the_card_url_sits_under_the_endpoint() {
        assert_eq!(card_url("http://h:1/"), "http://h:1/.well-known/agent-card.json");
        assert_eq!(card_url("https://h/agents/x"), "https://h/agents/x/.well-known/agent-card.json");
    }
}
