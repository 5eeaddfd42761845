//! Who is calling: API keys on every `/v1` route (except `/v1/payments/intents`, which takes the
//! payment token of a task: [`super::payments`]), and the [`Caller`] that handlers get.
//!
//! [`require`] is a middleware: it reads `Authorization: Bearer <key>`, checks the key, and puts the
//! [`Caller`] in the request's extensions, or answers 401 (no key, an unknown or revoked one) or 503 (the
//! key store cannot be read now). Handlers take a [`Caller`] argument; a handler reached without the
//! middleware gets 401, never an anonymous caller (fail closed). Later layers (quotas, per-tenant
//! listings) read the tenant from the same [`Caller`].
//!
//! Keys come from three places, checked in this order: `[[http.api_keys]]` in `genesis.toml` (hashes),
//! the embedded bus's first-run admin key (`http.admin_key_file`, see [`super::admin_key`]), and the key
//! store on the bus (`genesis apikey create`). Every hash comparison is constant-time.

use super::{error, Api};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use genesis_actors::apikey::{self, KeyHash, KeyId, KeyStore, Role, Verified};
use genesis_actors::task::TenantId;

/// `http.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Every `/v1` request needs an API key (the default).
    #[default]
    Required,
    /// No key is asked for: every caller is an admin. Only on a loopback address.
    Off,
}

/// A key listed in the configuration (`[[http.api_keys]]`), or the first-run admin key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfiguredKey {
    /// Where it is written, for logs and `apikey list`: `http.api_keys[0]`, or the admin key file.
    pub source: String,
    pub tenant: TenantId,
    pub role: Role,
    pub sha256: KeyHash,
}

/// How callers are authenticated: the mode and the keys listed in the configuration; the store's keys
/// are read per request (so a revocation takes effect on the next request, on every node).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthSettings {
    pub mode: AuthMode,
    pub configured: Vec<ConfiguredKey>,
}

/// The caller of a request, as its key says.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The key's id (or where a configured key is written): for logs, never a secret.
    pub key: String,
    pub tenant: TenantId,
    pub role: Role,
}

impl Caller {
    /// The caller of a node with `http.auth = "off"`: an admin of the default tenant.
    fn open() -> Caller {
        Caller { key: "auth-off".into(), tenant: TenantId::default(), role: Role::Admin }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may see an object of `tenant` (`None`: a record that names no tenant, written
    /// by an older version: an admin's only). Objects it may not see are answered 404, as unknown ones.
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        self.is_admin() || tenant.is_some_and(|t| t == self.tenant.as_str())
    }

    /// The tenant a new task or workflow is for: the key's. An admin may name another (`named`, from the
    /// body's `field`); a tenant key that names one is refused (400), even its own, so that a client
    /// never believes the body chooses the tenant.
    pub fn tenant_for(&self, named: Option<TenantId>, field: &'static str) -> Result<TenantId, Denied> {
        match named {
            None => Ok(self.tenant.clone()),
            Some(t) if self.is_admin() => Ok(t),
            Some(_) => Err(Denied::TenantInBody { field, tenant: self.tenant.clone() }),
        }
    }

    /// [`Denied::AdminOnly`] unless an admin key.
    pub fn admin_only(&self, what: &'static str) -> Result<(), Denied> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Denied::AdminOnly(what))
        }
    }
}

/// What a caller's key does not allow.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Denied {
    /// 400: a tenant key's request names a tenant.
    #[error(
        "`{field}` is not accepted with a tenant key: the tenant comes from the API key ({tenant}); remove \
         `{field}` (only an admin key may act for another tenant)"
    )]
    TenantInBody { field: &'static str, tenant: TenantId },
    /// 403: an admin key's route.
    #[error("{0} needs an admin key (genesis apikey create --role admin)")]
    AdminOnly(&'static str),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let status = match self {
            Denied::TenantInBody { .. } => StatusCode::BAD_REQUEST,
            Denied::AdminOnly(_) => StatusCode::FORBIDDEN,
        };
        error(status, self.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| unauthorized("an API key is required"))
    }
}

/// 401 with the RFC 6750 challenge and what to do.
fn unauthorized(why: &str) -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        format!(
            "{why}: send `Authorization: Bearer <key>` with a key from `genesis apikey create` (on the \
             embedded bus: the key in http.admin_key_file; docs/OPERATIONS.md, \"API keys\")"
        ),
    );
    r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

/// The bearer token of a request, if it sends one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = auth.split_once(' ')?;
    Some(token.trim()).filter(|t| scheme.eq_ignore_ascii_case("bearer") && !t.is_empty())
}

/// The middleware of the `/v1` routes (see the module docs).
pub async fn require(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    match authenticate(&api, req.headers()).await {
        Ok(caller) => {
            tracing::debug!(key = %caller.key, tenant = %caller.tenant, role = %caller.role, "authenticated");
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(r) => r,
    }
}

async fn authenticate(api: &Api, headers: &HeaderMap) -> Result<Caller, Response> {
    if api.auth.mode == AuthMode::Off {
        return Ok(Caller::open());
    }
    let Some(presented) = bearer(headers) else { return Err(unauthorized("an API key is required")) };
    let hash = KeyHash::of(presented);
    if let Some(k) = configured(&api.auth.configured, &hash) {
        let key = apikey::id_of(presented).map(KeyId::into).unwrap_or_else(|| k.source.clone());
        return Ok(Caller { key, tenant: k.tenant.clone(), role: k.role });
    }
    if apikey::id_of(presented).is_none() {
        return Err(unauthorized("the API key is not valid"));
    }
    let store: KeyStore = api.node.keys().map_err(IntoResponse::into_response)?;
    match store.verify(presented).await {
        Ok(Verified::Valid(k)) => Ok(Caller { key: k.id.to_string(), tenant: k.tenant, role: k.role }),
        Ok(Verified::Revoked(k)) => {
            tracing::info!(key = %k.id, "a revoked API key was presented");
            Err(unauthorized("this API key was revoked"))
        }
        Ok(Verified::Unknown) => Err(unauthorized("the API key is not valid")),
        Err(e) => Err(error(StatusCode::SERVICE_UNAVAILABLE, format!("cannot check the API key now ({e}); try again"))),
    }
}

/// The configured key with this hash. Every entry is compared (no early exit), each in constant time.
fn configured<'a>(keys: &'a [ConfiguredKey], hash: &KeyHash) -> Option<&'a ConfiguredKey> {
    keys.iter().fold(None, |found, k| if k.sha256.matches(hash) && found.is_none() { Some(k) } else { found })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role) -> Caller {
        Caller { key: "k".into(), tenant: TenantId::parse("acme").expect("tenant"), role }
    }

    #[test]
    fn a_tenant_key_sees_its_own_tenant_only_and_an_admin_sees_all() {
        let t = caller(Role::Tenant);
        assert!(t.sees(Some("acme")));
        assert!(!t.sees(Some("globex")) && !t.sees(None) && !t.sees(Some("acme2")));
        let a = caller(Role::Admin);
        assert!(a.sees(Some("globex")) && a.sees(None));
    }

    #[test]
    fn the_tenant_comes_from_the_key_unless_an_admin_names_one() {
        let other = TenantId::parse("globex").expect("tenant");
        let t = caller(Role::Tenant);
        assert_eq!(t.tenant_for(None, "tenant").ok(), Some(t.tenant.clone()));
        let refused = t.tenant_for(Some(t.tenant.clone()), "tenant").expect_err("refused");
        assert_eq!(refused.into_response().status(), StatusCode::BAD_REQUEST);
        assert_eq!(t.admin_only("x").expect_err("403").into_response().status(), StatusCode::FORBIDDEN);
        let a = caller(Role::Admin);
        assert_eq!(a.tenant_for(Some(other.clone()), "tenant").ok(), Some(other));
        assert_eq!(a.tenant_for(None, "tenant").ok(), Some(a.tenant.clone()));
    }

    #[test]
    fn bearer_tokens_are_read_from_authorization() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer gk_x".parse().expect("header"));
        assert_eq!(bearer(&h), Some("gk_x"));
        h.insert("authorization", "bearer   gk_y ".parse().expect("header"));
        assert_eq!(bearer(&h), Some("gk_y"));
        h.insert("authorization", "Basic gk_x".parse().expect("header"));
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer ".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn configured_keys_are_found_by_hash() {
        let k = |s: &str, role| ConfiguredKey {
            source: s.into(),
            tenant: TenantId::default(),
            role,
            sha256: KeyHash::of(s),
        };
        let keys = vec![k("one", Role::Tenant), k("two", Role::Admin)];
        assert_eq!(configured(&keys, &KeyHash::of("two")).map(|k| k.role), Some(Role::Admin));
        assert!(configured(&keys, &KeyHash::of("three")).is_none());
    }
}
