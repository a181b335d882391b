//! The list of rotators: every workspace crate under `rotators/`, one folder each. What tests and
//! tools need to know about a rotator is in its own `Cargo.toml` (its `[[bin]]` and
//! `[package.metadata.rotator]`), read here through `cargo metadata`; `scripts/rotators` reads the
//! same list for packaging and the bench.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug)]
pub struct Rotator {
    /// The crate's name, which is also its folder's: `rotators/<package>`.
    pub package: String,
    /// The Lambda binary, `rotate-<...>`.
    pub binary: String,
    /// The variables the binary reads besides `shared::config::ENV` (and the password policy's).
    pub env: Vec<String>,
    /// Whether it generates passwords, reading `shared::password::ENV`.
    pub password_policy: bool,
}

impl Rotator {
    /// The crate name as a Rust identifier, as test functions name it: `db_password`.
    pub fn snake(&self) -> String {
        self.package.replace('-', "_")
    }

    /// Every variable the binary reads.
    pub fn reads(&self) -> BTreeSet<&str> {
        let password: &[&str] = match self.password_policy {
            true => shared::password::ENV,
            false => &[],
        };
        shared::config::ENV
            .iter()
            .chain(password)
            .copied()
            .chain(self.env.iter().map(String::as_str))
            .collect()
    }
}

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every rotator, by crate name.
pub fn all() -> &'static [Rotator] {
    static ALL: OnceLock<Vec<Rotator>> = OnceLock::new();
    ALL.get_or_init(|| {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(workspace())
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "cargo metadata: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
        let mut all: Vec<Rotator> = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter_map(rotator)
            .collect();
        all.sort_by(|a, b| a.package.cmp(&b.package));
        all
    })
}

/// The rotator whose binary is `binary`.
pub fn by_binary(binary: &str) -> &'static Rotator {
    all()
        .iter()
        .find(|r| r.binary == binary)
        .unwrap_or_else(|| panic!("{binary} is not the binary of a crate under rotators/"))
}

/// One package of `cargo metadata`, if it is a crate under `rotators/`; a rotator without its
/// binary or its `[package.metadata.rotator]` fails, naming what is missing.
fn rotator(package: &Value) -> Option<Rotator> {
    let manifest = Path::new(package["manifest_path"].as_str()?);
    let folder = manifest.parent()?;
    if folder.parent()? != workspace().join("rotators") {
        return None;
    }
    let name = package["name"].as_str()?.to_owned();
    assert_eq!(
        folder.file_name()?.to_str()?,
        name,
        "rotators/{name}: the folder is named after its crate"
    );
    let bins: Vec<&str> = package["targets"]
        .as_array()?
        .iter()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.contains(&"bin".into()))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    let [binary] = bins[..] else {
        panic!(
            "{}: a rotator has one [[bin]], found {bins:?}",
            manifest.display()
        );
    };
    let declared = &package["metadata"]["rotator"];
    let env = declared["env"].as_array().unwrap_or_else(|| {
        panic!(
            "{}: [package.metadata.rotator] has no `env` list",
            manifest.display()
        )
    });
    let password_policy = declared["password-policy"].as_bool().unwrap_or_else(|| {
        panic!(
            "{}: [package.metadata.rotator] has no `password-policy = true|false`",
            manifest.display()
        )
    });
    Some(Rotator {
        package: name,
        binary: binary.to_owned(),
        env: env
            .iter()
            .map(|v| v.as_str().expect("env names are strings").to_owned())
            .collect(),
        password_policy,
    })
}
