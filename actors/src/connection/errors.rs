//! What a Redis error means for the node: wait it out, repair lost state, or fix the configuration.
//!
//! The rule (docs/semantics.md, "Redis errors"): no Redis error ends a running node. Transient errors
//! are retried with capped backoff; lost state is recreated; configuration errors stop `genesis serve`
//! at start (with the reason) and are retried like transient ones once the node runs, because a
//! credential rotated under a running node is something an operator fixes without a restart.

use redis::{ErrorKind, RedisError, ServerErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Connection trouble, timeouts, LOADING, TRYAGAIN, CLUSTERDOWN, READONLY/MASTERDOWN during a
    /// failover, OOM while memory is full: the same call can succeed later.
    Transient,
    /// Redis lost data we rely on (NOGROUP after a flush or an empty restart): recreate and go on.
    StateLost,
    /// Wrong credentials, permissions, TLS trust or client settings: an operator must act.
    Config,
    /// Anything else (a script error, a wrong type): tied to the call that made it.
    Other,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::StateLost => "state_lost",
            ErrorClass::Config => "config",
            ErrorClass::Other => "other",
        }
    }
}

/// Server error codes (possibly nested inside a script error's text) that pass by themselves.
const TRANSIENT_CODES: [&str; 9] =
    ["OOM", "READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "UNBLOCKED"];
/// Server error codes that need an operator.
const CONFIG_CODES: [&str; 4] = ["WRONGPASS", "NOAUTH", "NOPERM", "INVALIDPASSWORD"];
/// Words of a TLS failure inside an I/O error (rustls reports trust and handshake problems as I/O
/// errors); retrying cannot fix these.
const TLS_WORDS: [&str; 6] =
    ["certificate", "unknownissuer", "handshake", "peer is incompatible", "received corrupt message", "tls"];

/// Classify an error from its kind, code and text. Pure, so the table is unit-tested.
pub fn classify_parts(kind: ErrorKind, code: Option<&str>, text: &str) -> ErrorClass {
    let has_code = |c: &str| code == Some(c) || text.split(|ch: char| !ch.is_ascii_alphanumeric()).any(|w| w == c);
    if has_code("NOGROUP") {
        return ErrorClass::StateLost;
    }
    if CONFIG_CODES.iter().any(|c| has_code(c)) {
        return ErrorClass::Config;
    }
    match kind {
        ErrorKind::AuthenticationFailed
        | ErrorKind::InvalidClientConfig
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::EmptySentinelList
        | ErrorKind::Server(ServerErrorKind::NoPerm) => return ErrorClass::Config,
        ErrorKind::Io => {
            let lower = text.to_ascii_lowercase();
            return if TLS_WORDS.iter().any(|w| lower.contains(w)) {
                ErrorClass::Config
            } else {
                ErrorClass::Transient
            };
        }
        ErrorKind::ClusterConnectionNotFound | ErrorKind::NoValidReplicasFoundBySentinel => {
            return ErrorClass::Transient
        }
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => return ErrorClass::Transient,
        _ => {}
    }
    if TRANSIENT_CODES.iter().any(|c| has_code(c)) {
        return ErrorClass::Transient;
    }
    ErrorClass::Other
}

pub fn classify(e: &RedisError) -> ErrorClass {
    if e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return ErrorClass::Transient;
    }
    classify_parts(e.kind(), e.code(), &e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;

    fn c(kind: ErrorKind, code: Option<&str>, text: &str) -> ErrorClass {
        classify_parts(kind, code, text)
    }

    #[test]
    fn lost_state() {
        assert_eq!(c(ErrorKind::Extension, Some("NOGROUP"), "NOGROUP No such key"), StateLost);
        let script =
            "ERR Error running script (call to f_1): @user_script:3: NOGROUP No such key 'x' or consumer group";
        assert_eq!(c(ErrorKind::Server(ServerErrorKind::ResponseError), Some("ERR"), script), StateLost);
    }

    #[test]
    fn failover_and_memory_pressure_pass() {
        let ro = ErrorKind::Server(ServerErrorKind::ReadOnly);
        assert_eq!(c(ro, Some("READONLY"), "READONLY You can't write against a read only replica."), Transient);
        let oom = "ERR Error running script: OOM command not allowed when used memory > 'maxmemory'.";
        assert_eq!(c(ErrorKind::Server(ServerErrorKind::ResponseError), Some("ERR"), oom), Transient);
        assert_eq!(c(ErrorKind::Extension, Some("OOM"), "OOM command not allowed"), Transient);
        assert_eq!(c(ErrorKind::Server(ServerErrorKind::BusyLoading), None, "LOADING"), Transient);
        assert_eq!(c(ErrorKind::Server(ServerErrorKind::MasterDown), None, "MASTERDOWN"), Transient);
        assert_eq!(c(ErrorKind::Extension, Some("NOREPLICAS"), "NOREPLICAS Not enough good replicas"), Transient);
        assert_eq!(c(ErrorKind::Io, None, "Connection refused (os error 111)"), Transient);
        assert_eq!(c(ErrorKind::ClusterConnectionNotFound, None, ""), Transient);
    }

    #[test]
    fn configuration_needs_an_operator() {
        let auth = "WRONGPASS invalid username-password pair or user is disabled.";
        assert_eq!(c(ErrorKind::AuthenticationFailed, None, auth), Config);
        assert_eq!(c(ErrorKind::Extension, Some("WRONGPASS"), auth), Config);
        assert_eq!(c(ErrorKind::Extension, Some("NOAUTH"), "NOAUTH Authentication required."), Config);
        assert_eq!(c(ErrorKind::Io, None, "invalid peer certificate: UnknownIssuer"), Config);
        assert_eq!(c(ErrorKind::InvalidClientConfig, None, "bad url"), Config);
        assert_eq!(c(ErrorKind::MasterNameNotFoundBySentinel, None, ""), Config);
    }

    #[test]
    fn codes_match_whole_words_only() {
        // "BUSYGROUP" is not "BUSY"; "ROOM" is not "OOM".
        assert_eq!(c(ErrorKind::Extension, Some("BUSYGROUP"), "BUSYGROUP Consumer Group name already exists"), Other);
        assert_eq!(c(ErrorKind::Server(ServerErrorKind::ResponseError), Some("ERR"), "ERR no ROOM here"), Other);
        assert_eq!(c(ErrorKind::UnexpectedReturnType, None, "WRONGTYPE"), Other);
    }
}
