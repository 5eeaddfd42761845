//! Which `genesis.toml` to load: the one named with `--config` or `GENESIS_CONFIG`, else the first
//! that exists of `./config/genesis.toml` (a checkout: `cargo run -- serve` works as is) and
//! `/etc/genesis/genesis.toml` (an installed host: the CLI works without `--config`).
//!
//! A file named explicitly is used even if it does not exist (the error then names it): falling back
//! to another file would quietly run a node or a command with settings the operator did not choose.
//! There is no built-in configuration either, for the same reason: a node without its roster would
//! run no agents at all.

use super::ConfigError;
use std::path::{Path, PathBuf};

/// Searched in this order when no file is named.
pub const SEARCHED: [&str; 2] = ["config/genesis.toml", "/etc/genesis/genesis.toml"];

/// The configuration file to load; `explicit` is `--config` or, failing that, `GENESIS_CONFIG`.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    let searched: Vec<PathBuf> = SEARCHED.iter().map(PathBuf::from).collect();
    locate_in(explicit, searched, |p| p.exists())
}

fn locate_in(
    explicit: Option<&Path>,
    searched: Vec<PathBuf>,
    exists: impl Fn(&Path) -> bool,
) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(path.to_path_buf());
    }
    match searched.iter().find(|p| exists(p)) {
        Some(found) => Ok(found.clone()),
        None => Err(ConfigError::NotFound { searched }),
    }
}

/// `./a or /b`, for the error message.
pub(super) fn show(searched: &[PathBuf]) -> String {
    let shown: Vec<String> = searched
        .iter()
        .map(|p| if p.is_relative() { format!("./{}", p.display()) } else { p.display().to_string() })
        .collect();
    shown.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn searched() -> Vec<PathBuf> {
        SEARCHED.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_named_file_wins_even_when_missing() {
        let found = locate_in(Some(Path::new("/srv/mine.toml")), searched(), |_| true).expect("named");
        assert_eq!(found, Path::new("/srv/mine.toml"));
        let found = locate_in(Some(Path::new("/nope.toml")), searched(), |_| false).expect("named");
        assert_eq!(found, Path::new("/nope.toml"), "the read error names it later");
    }

    #[test]
    fn otherwise_the_first_that_exists() {
        let found = locate_in(None, searched(), |_| true).expect("found");
        assert_eq!(found, Path::new("config/genesis.toml"));
        let found = locate_in(Some(Path::new("")), searched(), |p| p.is_absolute()).expect("found");
        assert_eq!(found, Path::new("/etc/genesis/genesis.toml"), "an empty GENESIS_CONFIG is no name");
    }

    #[test]
    fn none_found_names_all_four_places() {
        let err = locate_in(None, searched(), |_| false).expect_err("nothing").to_string();
        assert_eq!(
            err,
            "no configuration file: pass --config FILE, set GENESIS_CONFIG, or put one at \
             ./config/genesis.toml or /etc/genesis/genesis.toml (start from the shipped config/genesis.toml \
             and config/agents.toml)"
        );
    }
}
