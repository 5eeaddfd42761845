//! `genesis apikey create|list|revoke`: the HTTP API's keys (docs/OPERATIONS.md, "API keys").
//!
//! Like every `genesis` command, these act on the bus directly: an operator with the Redis URL needs no
//! key. A key is shown once, when it is made; the store keeps its SHA-256 only. The embedded bus's store
//! lives inside `genesis serve`: there, `create --print-config` makes a key to list in
//! `[[http.api_keys]]` instead, and `list` shows the keys listed there.

use crate::cli::RedisOpt;
use crate::config::ServiceConfig;
use anyhow::{bail, Result};
use clap::Subcommand;
use genesis_actors::apikey::{self, ApiKey, KeyId, KeyStore, Revoked, Role};
use genesis_actors::secret::ExposeSecret;
use genesis_actors::task::{now_ms, TenantId};
use serde_json::json;

#[derive(Subcommand, Debug)]
pub enum ApikeyCommand {
    /// Make a key and print it (once: only its hash is kept).
    Create {
        #[command(flatten)]
        redis: RedisOpt,
        /// The tenant the key acts for: its tasks and workflows are this tenant's.
        #[arg(long)]
        tenant: TenantId,
        /// tenant: sees its tenant's objects only; admin: sees all, may act for any tenant, reads /v1/stats.
        #[arg(long, default_value = "tenant")]
        role: Role,
        /// Store nothing: print the key and the `[[http.api_keys]]` entry to add to genesis.toml (for the
        /// embedded bus, whose store `genesis` cannot reach).
        #[arg(long)]
        print_config: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the keys: id, tenant, role, created, revoked (never a secret).
    List {
        #[command(flatten)]
        redis: RedisOpt,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it is refused (401) from the next request on, on every node.
    Revoke {
        #[command(flatten)]
        redis: RedisOpt,
        /// The key's id, as `apikey list` shows it (the part after `gk_`).
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cfg: &ServiceConfig, command: ApikeyCommand) -> Result<()> {
    match command {
        ApikeyCommand::Create { print_config: true, tenant, role, json, .. } => {
            print_config(tenant, role, json);
            Ok(())
        }
        ApikeyCommand::Create { redis, tenant, role, json, .. } => {
            let store = store(cfg, &redis).await?;
            create(&store, tenant, role, json).await
        }
        ApikeyCommand::List { redis, json } => {
            // The embedded bus: only the configured keys can be shown from here.
            let stored = match super::redis_target(cfg, &redis)? {
                Some(_) => store(cfg, &redis).await?.list().await?,
                None => {
                    errln!(
                        "no Redis URL: only the keys of [[http.api_keys]] are listed; an embedded-bus node without \
                         them accepts the admin key in {}",
                        cfg.http.admin_key_file.display()
                    );
                    Vec::new()
                }
            };
            list(cfg, &stored, json);
            Ok(())
        }
        ApikeyCommand::Revoke { redis, id, json } => {
            let id = KeyId::parse(id.trim_start_matches(apikey::PREFIX)).map_err(anyhow::Error::msg)?;
            let store = store(cfg, &redis).await?;
            revoke(&store, &id, json).await
        }
    }
}

async fn store(cfg: &ServiceConfig, redis: &RedisOpt) -> Result<KeyStore> {
    if super::redis_target(cfg, redis)?.is_none() {
        bail!(
            "no Redis URL: API keys are stored on Redis (pass --redis-url or set GENESIS_REDIS_URL). For the \
             embedded bus, `genesis apikey create --print-config` prints an entry for [[http.api_keys]] in {}",
            cfg.source.display()
        );
    }
    Ok(KeyStore::for_bus(&super::connect(cfg, redis).await?))
}

async fn create(store: &KeyStore, tenant: TenantId, role: Role, json: bool) -> Result<()> {
    // A 48-bit id collides once in ~16 million keys; a collision is simply made again.
    for _ in 0..3 {
        let issued = apikey::issue(tenant.clone(), role, now_ms());
        match store.create(&issued.record).await {
            Ok(()) => {
                let key = issued.key.expose_secret();
                let r = &issued.record;
                if json {
                    let v =
                        json!({"id": r.id, "key": key, "tenant": r.tenant, "role": r.role, "created_at": r.created_at});
                    outln!("{v}");
                } else {
                    outln!("{key}");
                    errln!(
                        "made key {} for tenant {} (role {}); it is shown only now: keep it in a secret store. \
                         Send it as `Authorization: Bearer <key>`; revoke it with `genesis apikey revoke {}`.",
                        r.id,
                        r.tenant,
                        r.role,
                        r.id
                    );
                }
                return Ok(());
            }
            Err(apikey::KeyStoreError::Exists(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("could not find a free key id in 3 tries; try again")
}

fn print_config(tenant: TenantId, role: Role, json: bool) {
    let issued = apikey::issue(tenant, role, now_ms());
    let (key, r) = (issued.key.expose_secret(), &issued.record);
    let sha = r.sha256.to_hex();
    if json {
        outln!("{}", json!({"key": key, "tenant": r.tenant, "role": r.role, "key_sha256": sha}));
        return;
    }
    outln!("{key}");
    outln!("");
    outln!("# Add to genesis.toml and restart the node; the key above is not stored anywhere: keep it now.");
    outln!("[[http.api_keys]]\ntenant = \"{}\"\nrole = \"{}\"\nkey_sha256 = \"{sha}\"", r.tenant, r.role);
}

fn list(cfg: &ServiceConfig, stored: &[ApiKey], json: bool) {
    let configured = &cfg.http.auth.configured;
    if json {
        let mut all: Vec<serde_json::Value> = stored
            .iter()
            .map(|k| {
                json!({"id": k.id, "tenant": k.tenant, "role": k.role, "created_at": k.created_at,
                       "revoked_at": k.revoked_at, "source": "store"})
            })
            .collect();
        all.extend(configured.iter().map(|k| {
            json!({"id": null, "tenant": k.tenant, "role": k.role, "created_at": null, "revoked_at": null,
                   "source": k.source})
        }));
        outln!("{}", serde_json::Value::Array(all));
        return;
    }
    outln!("{:<14} {:<24} {:<7} {:<21} {:<21} source", "id", "tenant", "role", "created", "revoked");
    for k in stored {
        let revoked = k.revoked_at.map(super::workflows::timestamp).unwrap_or_else(|| "-".into());
        let created = super::workflows::timestamp(k.created_at);
        outln!("{:<14} {:<24} {:<7} {:<21} {:<21} store", k.id, k.tenant, k.role, created, revoked);
    }
    for k in configured {
        outln!("{:<14} {:<24} {:<7} {:<21} {:<21} {}", "-", k.tenant, k.role, "-", "-", k.source);
    }
}

async fn revoke(store: &KeyStore, id: &KeyId, json: bool) -> Result<()> {
    let (record, now) = match store.revoke(id, now_ms()).await? {
        Revoked::Now(r) => (r, true),
        Revoked::Already(r) => (r, false),
        Revoked::Unknown => bail!(
            "no key {id} in the store (`genesis apikey list`); a key listed in [[http.api_keys]] is revoked by \
             removing its entry and restarting the nodes"
        ),
    };
    let at = record.revoked_at.map(super::workflows::timestamp).unwrap_or_default();
    if json {
        outln!("{}", json!({"id": record.id, "tenant": record.tenant, "revoked_at": record.revoked_at, "now": now}));
    } else if now {
        outln!("revoked key {id} (tenant {}) at {at}: it is refused from the next request on", record.tenant);
    } else {
        outln!("key {id} (tenant {}) was already revoked at {at}", record.tenant);
    }
    Ok(())
}
