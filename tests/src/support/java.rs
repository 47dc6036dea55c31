//! Small Java programs that the interoperability tests compile with `javac` and run against the
//! official Java client (`pulsar-client-original`, from Maven Central).
//!
//! The classpath is the broker closure that `scripts/pulsar-broker fetch` resolves into
//! `$PULSAR_CACHE_DIR/pulsar-<version>/lib` (default cache `~/.cache/pulsar-sansio`): it holds the
//! Java client, its crypto, Avro and Protobuf jars. Sources live in `tests/java/`; each is compiled
//! once per content into `target/java-classes/<name>-<hash>/`, under a file lock so that test
//! processes running at once do not compile the same program twice.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::error::SupportError;

/// The Pulsar version whose jars the programs run on (the broker script's default).
const PULSAR_VERSION: &str = "4.0.7";

/// A compiled Java program, ready to run.
#[derive(Debug, Clone)]
pub struct JavaProgram {
    main_class: String,
    classes: PathBuf,
    lib: PathBuf,
}

impl JavaProgram {
    /// Compiles `tests/java/<main_class>.java` (once per content) on the Java client's classpath.
    pub fn compile(main_class: &str) -> Result<JavaProgram, SupportError> {
        let source = java_dir().join(format!("{main_class}.java"));
        let text = std::fs::read(&source)
            .map_err(|e| SupportError::io(format!("reading {}", source.display()), e))?;
        let lib = client_lib()?;
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let classes = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/java-classes")
            .join(format!("{main_class}-{:016x}", hasher.finish()));
        let program = JavaProgram {
            main_class: main_class.to_string(),
            classes,
            lib,
        };
        if !program
            .classes
            .join(format!("{main_class}.class"))
            .is_file()
        {
            program.javac(&source)?;
        }
        Ok(program)
    }

    /// A `java` command that runs the program with `args`; the caller adds its own and runs it.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(java_binary("java"));
        command
            .arg("-XX:TieredStopAtLevel=1")
            .arg("-Xmx256m")
            .arg("-cp")
            .arg(self.classpath(&self.classes))
            .arg(&self.main_class)
            .args(args);
        command
    }

    fn classpath(&self, first: &Path) -> String {
        format!("{}:{}/*", first.display(), self.lib.display())
    }

    fn javac(&self, source: &Path) -> Result<(), SupportError> {
        // Compile into a scratch directory, then rename: a reader never sees half the classes.
        let scratch = self
            .classes
            .with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .map_err(|e| SupportError::io(format!("creating {}", scratch.display()), e))?;
        let output = Command::new(java_binary("javac"))
            .arg("-nowarn")
            .arg("-cp")
            .arg(format!("{}/*", self.lib.display()))
            .arg("-d")
            .arg(&scratch)
            .arg(source)
            .output()
            .map_err(|e| SupportError::io("running javac", e))?;
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(SupportError::Script {
                script: PathBuf::from("javac"),
                args: source.display().to_string(),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        match std::fs::rename(&scratch, &self.classes) {
            Ok(()) => Ok(()),
            // Another process finished first: its classes are the same.
            Err(_) if self.classes.is_dir() => {
                let _ = std::fs::remove_dir_all(&scratch);
                Ok(())
            }
            Err(e) => Err(SupportError::io(
                format!("moving classes to {}", self.classes.display()),
                e,
            )),
        }
    }
}

/// `tests/java`, where the programs' sources are.
fn java_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("java")
}

/// `$JAVA_HOME/bin/<tool>` when `JAVA_HOME` is set, else the tool from `PATH`.
fn java_binary(tool: &str) -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if !home.is_empty() => Path::new(&home).join("bin").join(tool),
        _ => PathBuf::from(tool),
    }
}

/// The jar directory the broker script resolved; an error naming the command that fills it.
fn client_lib() -> Result<PathBuf, SupportError> {
    let cache = match std::env::var_os("PULSAR_CACHE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => match std::env::var_os("XDG_CACHE_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("pulsar-sansio"),
            _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/pulsar-sansio"),
        },
    };
    let lib = cache.join(format!("pulsar-{PULSAR_VERSION}/lib"));
    let client_jar = lib.join(format!("pulsar-client-original-{PULSAR_VERSION}.jar"));
    if client_jar.is_file() {
        Ok(lib)
    } else {
        Err(SupportError::NoBroker(format!(
            "{} is missing: run `scripts/pulsar-broker fetch` (the tests' scripts do)",
            client_jar.display()
        )))
    }
}
