//! DB logins side by side: the rotator's own login code (`db_password::db::connect`, then
//! `SELECT 1`, then close) against the C client libraries (libpq, MariaDB Connector/C) doing the
//! same in bench/reference/logins.c, on the same server, user and TLS settings, in warm
//! processes. Rounds alternate between the two so both see the same machine.

use db_password::db::{self, Settings};
use db_password::secret::DbSecret;
use e2e::db::{Kind, unique_user};
use serde_json::{Value, json};
use shared::SecretString;
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "Bench-login-pw-1";
const ROUNDS: usize = 5;

async fn ours(secret: &DbSecret, settings: &Settings, n: usize) -> Vec<f64> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut conn = db::connect(secret, secret, settings, db::Clock::new(None))
            .await
            .unwrap();
        conn.ping().await.unwrap();
        drop(conn);
        samples.push(crate::ms(t.elapsed()));
    }
    samples
}

/// `n` logins by the reference client in one process (plus one not counted: library set-up).
fn reference(tool: &Path, kind: Kind, user: &str, ca: Option<&str>, n: usize) -> Vec<f64> {
    let out = std::process::Command::new(tool)
        .args([
            if kind == Kind::Postgres {
                "pg"
            } else {
                "mariadb"
            },
            &(n + 1).to_string(),
            "127.0.0.1",
            &kind.port().to_string(),
            user,
            PASSWORD,
            if kind == Kind::Postgres {
                "postgres"
            } else {
                "-"
            },
            ca.unwrap_or("-"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all: Vec<f64> = serde_json::from_slice(&out.stdout).unwrap();
    all.remove(0);
    all
}

/// Per-login figures for PostgreSQL and MariaDB, with TLS verify-full and without.
pub async fn run(tool: &Path, per_round: usize) -> Value {
    let ca_file = std::env::var("TEST_CA_FILE").unwrap();
    let settings = Settings::new(
        std::fs::read(&ca_file).unwrap(),
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .unwrap();
    let mut report = json!({});
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("bench_login");
        kind.create_user(&user, PASSWORD).await;
        for tls in [true, false] {
            let label = format!(
                "{} {}",
                if kind == Kind::Postgres {
                    "PostgreSQL"
                } else {
                    "MariaDB"
                },
                if tls { "TLS verify-full" } else { "no TLS" }
            );
            eprintln!("bench: logins, {label}");
            let mut value = kind.secret(&user, PASSWORD);
            value["ssl"] = json!(tls);
            let secret = DbSecret::parse(&SecretString::new(value.to_string()), "bench").unwrap();
            let ca = tls.then_some(ca_file.as_str());
            // Warm-up for both: the first login of a process pays one-time set-up.
            ours(&secret, &settings, 2).await;
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                a.extend(ours(&secret, &settings, per_round).await);
                b.extend(reference(tool, kind, &user, ca, per_round));
            }
            let (ours, theirs) = (crate::summary(a), crate::summary(b));
            let ratio = ours["median_ms"].as_f64().unwrap() / theirs["median_ms"].as_f64().unwrap();
            report[label] = json!({"ours": ours, "reference": theirs, "ratio": ratio});
        }
    }
    report
}
