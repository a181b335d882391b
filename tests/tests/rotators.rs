//! The list of rotators (`tests/src/rotators.rs`: the crates under `rotators/`) is what every
//! matrix covers: a rotator added to the list and missing from one fails here, naming the file.

use e2e::rotators::{self, Rotator};

fn read(path: &str) -> String {
    std::fs::read_to_string(rotators::workspace().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every Rust source file under `dir`, concatenated.
fn sources(dir: &std::path::Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            text.push_str(&sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

fn check(what: &str, file: &str, wants: impl Fn(&Rotator) -> String) {
    let text = read(file);
    let missing: Vec<String> = rotators::all()
        .iter()
        .map(&wants)
        .filter(|w| !text.contains(w.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{file}: {what} is missing for some rotators: no {missing:?}"
    );
}

/// Every folder under `rotators/` with a Cargo.toml is in the list (a workspace member).
#[test]
fn the_list_holds_every_rotator_folder() {
    let mut folders: Vec<String> = std::fs::read_dir(rotators::workspace().join("rotators"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").exists())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let listed: Vec<&str> = rotators::all().iter().map(|r| r.package.as_str()).collect();
    assert_eq!(listed, folders);
    assert!(listed.len() >= 5, "{listed:?}");
}

/// `scripts/rotators`, which packaging and the bench read, lists the same rotators.
#[test]
fn the_scripts_read_the_same_list() {
    let out = std::process::Command::new(rotators::workspace().join("scripts/rotators"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> = rotators::all()
        .iter()
        .map(|r| format!("{} {}", r.package, r.binary))
        .collect();
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(printed, listed);
}

/// Bad input is refused naming the field, changing nothing, by every rotator.
#[test]
fn every_rotator_has_a_bad_input_matrix() {
    check("a bad-input matrix", "tests/tests/bad_input.rs", |r| {
        format!("async fn {}_refuses_bad_input()", r.snake())
    });
}

/// The pre-flight reads only, and passes on a good secret, for every rotator.
#[test]
fn every_rotator_has_a_preflight_test() {
    check("a pre-flight test", "tests/tests/preflight.rs", |r| {
        format!("async fn {}_preflight_reads_only()", r.snake())
    });
}

/// The README documents every rotator under a heading of its own.
#[test]
fn every_rotator_has_a_readme_section() {
    let readme = read("README.md");
    let headings: Vec<&str> = readme.lines().filter(|l| l.starts_with('#')).collect();
    for r in rotators::all() {
        let name = format!("`{}`", r.binary);
        assert!(
            headings.iter().any(|h| h.contains(&name)),
            "README.md has no heading naming {name}"
        );
    }
}

/// Every variable a rotator declares is one its code names (the AWS SDK reads the `AWS_` ones).
#[test]
fn every_declared_variable_is_named_in_the_rotators_code() {
    for r in rotators::all() {
        let code = sources(&rotators::workspace().join("rotators").join(&r.package));
        for var in r.env.iter().filter(|v| !v.starts_with("AWS_")) {
            assert!(
                code.contains(&format!("\"{var}\"")),
                "rotators/{}/Cargo.toml declares {var}, which its code never names",
                r.package
            );
        }
    }
}
