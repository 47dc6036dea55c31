//! The Python interpreter the interoperability tests run (the official client, reference codecs).
//!
//! It is `PULSAR_TEST_PYTHON` when set (`scripts/test` sets it to the project's virtual
//! environment, built by `scripts/lib/setup.sh`), else `<repo>/.venv/bin/python` when that
//! environment exists, else `python3` from `PATH`.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

/// The interpreter: see the module documentation for the order of the choices.
pub fn python_interpreter() -> OsString {
    choose(
        std::env::var_os("PULSAR_TEST_PYTHON"),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
    )
}

/// A command running [`python_interpreter`].
pub fn python_command() -> Command {
    Command::new(python_interpreter())
}

fn choose(from_env: Option<OsString>, venv: &Path) -> OsString {
    match from_env {
        Some(p) if !p.is_empty() => p,
        _ if venv.is_file() => venv.as_os_str().to_owned(),
        _ => OsString::from("python3"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_then_the_venv_then_python3() {
        let dir = std::env::temp_dir().join(format!("pulsar-python-choice-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let venv = dir.join("python");
        assert_eq!(choose(None, &venv), OsString::from("python3"));
        assert_eq!(
            choose(Some(OsString::new()), &venv),
            OsString::from("python3")
        );
        std::fs::write(&venv, b"").expect("write");
        assert_eq!(choose(None, &venv), venv.as_os_str());
        assert_eq!(
            choose(Some(OsString::from("/opt/py")), &venv),
            OsString::from("/opt/py")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
