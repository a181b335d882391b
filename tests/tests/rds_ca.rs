//! The Amazon RDS CA bundle ships inside `rotate-db-password` and holds the RDS roots, so TLS to
//! RDS and Aurora verifies with no configuration.

use std::process::Command;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The subjects of the bundle's certificates, read by openssl.
fn subjects() -> Vec<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("openssl crl2pkcs7 -nocrl -certfile rotators/db-password/certs/rds-ca-bundle.pem | openssl pkcs7 -print_certs -noout")
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("subject="))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_bundle_holds_every_regions_rds_roots() {
    let subjects = subjects();
    assert!(subjects.len() >= 100, "{}", subjects.len());
    for region in [
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "ap-southeast-2",
        "sa-east-1",
    ] {
        for kind in ["RSA2048 G1", "RSA4096 G1", "ECC384 G1"] {
            let cn = format!("Amazon RDS {region} Root CA {kind}");
            assert!(
                subjects.iter().any(|s| s.contains(&cn)),
                "{cn} is missing from the bundle"
            );
        }
    }
}

/// The binary the tests run carries every certificate of the bundle (`scripts/package` runs the
/// same check on each built zip); a binary without it is refused by the check.
#[test]
fn the_binary_carries_the_bundle() {
    let check = |binary: &str| {
        Command::new("scripts/check-package")
            .arg(e2e::workspace_binary(binary))
            .current_dir(repo())
            .output()
            .unwrap()
    };
    let db = check("rotate-db-password");
    assert!(
        db.status.success(),
        "{}",
        String::from_utf8_lossy(&db.stderr)
    );
    let other = check("rotate-random-password");
    assert!(!other.status.success(), "the check cannot fail");
}
