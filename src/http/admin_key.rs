//! The first-run admin key of a node on the embedded bus.
//!
//! The embedded bus's key store lives inside `genesis serve`, where `genesis apikey create` cannot reach
//! it; so that `cargo run --release -- serve` works with no extra step, a node on the embedded bus that
//! requires keys but has none listed in `[[http.api_keys]]` uses the admin key in
//! `http.admin_key_file` (default `admin.key` beside `genesis.toml`), and makes one there first if the
//! file does not exist: created with mode 0600, never overwritten, reused by every later start (delete
//! it to have a new one made). The key is never logged; the log names the file and how to use it.

use super::auth::ConfiguredKey;
use anyhow::{bail, Context, Result};
use genesis_actors::apikey::{self, KeyHash, Role};
use genesis_actors::secret::ExposeSecret;
use genesis_actors::task::{now_ms, TenantId};
use std::io::Write;
use std::path::Path;

/// The admin key of `path`, made first when the file does not exist. The boolean is `true` when it
/// was made now.
pub fn ensure(path: &Path) -> Result<(ConfiguredKey, bool)> {
    let shown = path.display();
    let made = match std::fs::read_to_string(path) {
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_new(path)?;
            true
        }
        Err(e) => bail!("http.admin_key_file = {shown:?}: cannot read it ({e}); fix its permissions, or list keys in [[http.api_keys]]"),
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("http.admin_key_file = {shown:?}: cannot read it"))?;
    let key = text.trim();
    if apikey::id_of(key).is_none() {
        bail!(
            "http.admin_key_file = {shown:?}: does not hold a Genesis API key (gk_<id>_<secret>); delete the file \
             to have a new key made at the next start"
        );
    }
    warn_if_readable_by_others(path);
    let configured = ConfiguredKey {
        source: format!("http.admin_key_file ({shown})"),
        tenant: TenantId::default(),
        role: Role::Admin,
        sha256: KeyHash::of(key),
    };
    Ok((configured, made))
}

/// Create the file (mode 0600, failing if it appeared meanwhile) with a new admin key.
fn write_new(path: &Path) -> Result<()> {
    let shown = path.display();
    let issued = apikey::issue(TenantId::default(), Role::Admin, now_ms());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| {
        format!(
            "http.admin_key_file = {shown:?}: cannot create it; set it to a writable path, list keys in \
             [[http.api_keys]] (genesis apikey create --print-config), or set http.auth = \"off\" on a loopback address"
        )
    })?;
    file.write_all(format!("{}\n", issued.key.expose_secret()).as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("http.admin_key_file = {shown:?}: cannot write it"))?;
    Ok(())
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "the admin key file is readable by other users: chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_with_mode_0600_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("admin.key");
        let (first, made) = ensure(&path).expect("made");
        assert!(made);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(first.sha256.matches(&KeyHash::of(text.trim())));
        assert_eq!(first.role, Role::Admin);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, made) = ensure(&path).expect("read");
        assert!(!made);
        assert_eq!(again.sha256, first.sha256, "the same key on the next start");
        std::fs::write(&path, "not a key").expect("write");
        let err = ensure(&path).expect_err("refused").to_string();
        assert!(err.contains("http.admin_key_file") && err.contains("delete the file"), "{err}");
    }
}
