//! The Python virtualenv of the real test peers in `tests/agents/` (a2a-sdk and friends), made once
//! per process by `tests/agents/setup-venv.sh` (it is idempotent, fast when warm, and serialises
//! parallel test binaries with `flock`). Its location is `$GENESIS_TEST_VENV`, by default
//! `<repo>/target/test-venv`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `tests/agents` directory of this repository.
pub fn agents_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("agents")
}

/// The venv's python, after making the venv if needed. Panics with the script's error output
/// (which names what is missing, e.g. `python3-venv`) when it cannot be made.
pub fn venv_python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(setup) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn setup() -> Result<PathBuf, String> {
    let script = agents_dir().join("setup-venv.sh");
    let out =
        Command::new("bash").arg(&script).output().map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{} failed ({}):\n{stderr}", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let python = stdout.lines().last().map(str::trim).unwrap_or_default();
    if python.is_empty() || !Path::new(python).exists() {
        return Err(format!("{} printed no python path (stdout {stdout:?}):\n{stderr}", script.display()));
    }
    Ok(PathBuf::from(python))
}
