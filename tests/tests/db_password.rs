//! `rotate-db-password` end to end: the real binary, driven through the Lambda Runtime API by the
//! local rotate-secret driver, against moto and throwaway PostgreSQL and MariaDB servers that
//! check passwords and speak TLS with a test CA.

use aws_sdk_secretsmanager::Client;
use e2e::db::{Kind, unique_user};
use e2e::driver::{self, Options, Rotation};
use e2e::runtime_api::Function;
use e2e::stack;
use serde_json::{Value, json};
use shared::Step;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsStore, SecretStore};
use std::time::Duration;

const BINARY: &str = "rotate-db-password";
const HOSTILE: &str = "o'brien\"; drop table x; --";

struct Rig {
    client: Client,
    store: AwsStore,
    function: Function,
}

impl Rig {
    /// The function trusts the test CA unless `env` says otherwise.
    async fn new(env: &[(&str, &str)]) -> Self {
        let ca = std::env::var("TEST_CA_FILE").expect("TEST_CA_FILE: run scripts/test");
        let mut vars = vec![("DB_CA_BUNDLE_FILE".to_string(), ca)];
        for (k, v) in env {
            vars.retain(|(name, _)| name != k);
            if !v.is_empty() {
                vars.push((k.to_string(), v.to_string()));
            }
        }
        let client = stack::client().await;
        let function = Function::start(&e2e::workspace_binary(BINARY), &vars, false)
            .await
            .unwrap();
        Self {
            store: AwsStore::new(client.clone()),
            client,
            function,
        }
    }

    async fn secret(&self, name: &str, value: &Value) -> String {
        stack::create_secret(&self.client, &stack::unique(name), &value.to_string()).await
    }

    async fn rotate(&mut self, arn: &str) -> Rotation {
        let opts = Options::new(BINARY);
        driver::rotate(&self.client, &mut self.function, arn, &opts)
            .await
            .unwrap()
    }

    async fn rotate_ok(&mut self, arn: &str) -> Rotation {
        driver::rotate_ok(&self.client, &mut self.function, arn, &Options::new(BINARY)).await
    }

    async fn value(&self, arn: &str, stage: &str) -> Value {
        stack::json_value(&self.store, arn, stage).await
    }

    /// The function's output must never contain a password the test knows of.
    fn assert_no_leak(&self, secrets: &[&str]) {
        self.function.assert_no_leak(secrets);
    }
}

fn creds(v: &Value) -> (String, String) {
    (
        v["username"].as_str().unwrap().to_owned(),
        v["password"].as_str().unwrap().to_owned(),
    )
}

async fn single_user(kind: Kind, user: &str, env: &[(&str, &str)]) {
    kind.create_user(user, "Initial-pw-1").await;
    let mut rig = Rig::new(env).await;
    let arn = rig
        .secret("db-single", &kind.secret(user, "Initial-pw-1"))
        .await;
    let mut seen = vec!["Initial-pw-1".to_string()];
    for round in 1..=2 {
        let r = rig.rotate_ok(&arn).await;
        assert_eq!(r.labels.version_with(AWSPENDING), None);
        let (cur_user, cur_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        assert_eq!(cur_user, user, "single user keeps its name");
        assert!(!seen.contains(&cur_pw));
        kind.login(user, &cur_pw)
            .await
            .unwrap_or_else(|e| panic!("round {round}: new password: {e}"));
        let old = seen.last().unwrap();
        assert!(
            kind.login(user, old).await.is_err(),
            "round {round}: the old password still logs in"
        );
        assert_eq!(creds(&rig.value(&arn, AWSPREVIOUS).await).1, *old);
        seen.push(cur_pw);
    }
    let seen: Vec<&str> = seen.iter().map(String::as_str).collect();
    rig.assert_no_leak(&seen);
}

#[tokio::test]
async fn postgres_single_user_twice() {
    single_user(Kind::Postgres, &unique_user("app"), &[]).await;
}

#[tokio::test]
async fn mariadb_single_user_twice() {
    // The CA bundle as PEM text in the environment instead of a file.
    let pem = std::fs::read_to_string(std::env::var("TEST_CA_FILE").unwrap()).unwrap();
    let env = [
        ("DB_CA_BUNDLE_FILE", ""),
        ("DB_CA_BUNDLE_PEM", pem.as_str()),
    ];
    single_user(Kind::MariaDb, &unique_user("app"), &env).await;
}

#[tokio::test]
async fn hostile_user_names_rotate() {
    single_user(
        Kind::Postgres,
        &format!("{HOSTILE}{}", unique_user("")),
        &[],
    )
    .await;
    single_user(Kind::MariaDb, &format!("{HOSTILE}{}", unique_user("")), &[]).await;
}

/// Three rotations: user -> clone -> user -> clone. A grant added to the original user after the
/// first rotation reaches whichever user is current afterwards; the previous user keeps working.
async fn alternating(kind: Kind, user: &str) {
    let (t1, t2) = (
        kind.table(&unique_user("t1")),
        kind.table(&unique_user("t2")),
    );
    kind.create_user(user, "Initial-pw-1").await;
    kind.admin(&[
        format!("CREATE TABLE {t1} (id int)"),
        format!("CREATE TABLE {t2} (id int)"),
        format!("GRANT SELECT ON {t1} TO {}", kind.grantee(user)),
    ])
    .await;
    let mut rig = Rig::new(&[]).await;
    let (super_user, super_pw) = kind.superuser();
    let master = rig
        .secret("db-master", &kind.secret(&super_user, &super_pw))
        .await;
    let mut value = kind.secret(user, "Initial-pw-1");
    value["masterarn"] = json!(master);
    let arn = rig.secret("db-alternating", &value).await;
    let clone = format!("{user}_clone");
    let mut passwords = vec!["Initial-pw-1".to_string()];
    for round in 1..=3 {
        let r = rig.rotate_ok(&arn).await;
        assert_eq!(r.labels.version_with(AWSPENDING), None);
        let (cur_user, cur_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        let (prev_user, prev_pw) = creds(&rig.value(&arn, AWSPREVIOUS).await);
        let want = if round % 2 == 1 { &clone } else { user };
        assert_eq!(&cur_user, want, "round {round}");
        assert_ne!(cur_user, prev_user);
        kind.login(&cur_user, &cur_pw)
            .await
            .unwrap_or_else(|e| panic!("round {round}: current: {e}"));
        kind.login(&prev_user, &prev_pw).await.unwrap_or_else(|e| {
            panic!("round {round}: the previous user must work until the next rotation: {e}")
        });
        assert!(
            kind.can_select(&cur_user, &cur_pw, &t1).await,
            "round {round}: {cur_user} lost a grant"
        );
        if round == 1 {
            kind.admin(&[format!("GRANT SELECT ON {t2} TO {}", kind.grantee(user))])
                .await;
        } else {
            assert!(
                kind.can_select(&cur_user, &cur_pw, &t2).await,
                "round {round}: the later grant did not follow"
            );
        }
        passwords.push(cur_pw);
    }
    assert_eq!(
        creds(&rig.value(&master, AWSCURRENT).await).1,
        super_pw,
        "the master secret is untouched"
    );
    let secrets: Vec<&str> = passwords
        .iter()
        .map(String::as_str)
        .chain([super_pw.as_str()])
        .collect();
    rig.assert_no_leak(&secrets);
}

#[tokio::test]
async fn postgres_alternating_users() {
    alternating(Kind::Postgres, &unique_user("svc")).await;
}

#[tokio::test]
async fn mariadb_alternating_users() {
    alternating(Kind::MariaDb, &unique_user("svc")).await;
}

#[tokio::test]
async fn hostile_names_alternate() {
    alternating(Kind::Postgres, &format!("{HOSTILE}{}", unique_user(""))).await;
    alternating(Kind::MariaDb, &format!("{HOSTILE}{}", unique_user(""))).await;
}

/// A rotation whose setSecret fails leaves AWSCURRENT as it was, and its password still works.
async fn fails_at_set(rig: &mut Rig, arn: &str, password: &str) -> String {
    let before = rig.store.describe(arn).await.unwrap().labels;
    let r = rig.rotate(arn).await;
    assert_eq!(r.steps.len(), 2, "{:?}", r.steps);
    assert_eq!(r.steps[1].step, Step::Set);
    assert_eq!(
        r.labels.version_with(AWSCURRENT),
        before.version_with(AWSCURRENT)
    );
    assert_eq!(creds(&rig.value(arn, AWSCURRENT).await).1, password);
    r.steps[1].result.clone().unwrap_err()
}

#[tokio::test]
async fn tls_is_verified_against_the_configured_ca() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("tls");
        kind.create_user(&user, "Initial-pw-1").await;
        let wrong_ca = std::env::var("TEST_WRONG_CA_FILE").unwrap();
        for (env, why) in [
            (wrong_ca.as_str(), "a wrong CA"),
            ("", "the public roots only"),
        ] {
            let mut rig = Rig::new(&[("DB_CA_BUNDLE_FILE", env)]).await;
            let arn = rig
                .secret("db-tls", &kind.secret(&user, "Initial-pw-1"))
                .await;
            let err = fails_at_set(&mut rig, &arn, "Initial-pw-1").await;
            kind.login(&user, "Initial-pw-1")
                .await
                .expect("the current password still works");
            let place = format!(
                "cannot connect to {} at 127.0.0.1:{}",
                kind.engine(),
                kind.port()
            );
            assert!(err.contains(&place), "{why}: {err}");
            assert!(err.to_lowercase().contains("certificate"), "{why}: {err}");
            rig.assert_no_leak(&["Initial-pw-1"]);
        }
    }
}

#[tokio::test]
async fn plain_text_only_when_the_secret_says_so_and_with_a_warning() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("plain");
        kind.create_user(&user, "Initial-pw-1").await;
        let mut value = kind.secret(&user, "Initial-pw-1");
        value["ssl"] = json!(false);
        let mut rig = Rig::new(&[("DB_CA_BUNDLE_FILE", "")]).await;
        let arn = rig.secret("db-plain", &value).await;
        rig.rotate_ok(&arn).await;
        let (_, pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        kind.login(&user, &pw).await.unwrap();
        let logs = rig.function.output().join("\n");
        assert!(
            logs.contains("TLS is off because the secret says"),
            "{logs}"
        );
        assert!(logs.contains("\"level\":\"WARN\""), "{logs}");
    }
}

#[tokio::test]
async fn a_wrong_current_password_changes_nothing() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("wrong");
        kind.create_user(&user, "Real-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-wrong", &kind.secret(&user, "Stale-pw-1"))
            .await;
        let err = fails_at_set(&mut rig, &arn, "Stale-pw-1").await;
        assert!(
            err.contains("neither the AWSPENDING nor the AWSCURRENT password logs in"),
            "{err}"
        );
        assert!(err.contains(&format!("127.0.0.1:{}", kind.port())), "{err}");
        assert!(
            !err.contains("Stale-pw-1") && !err.contains("Real-pw-1"),
            "{err}"
        );
        kind.login(&user, "Real-pw-1")
            .await
            .expect("the real password is unchanged");
    }
}

#[tokio::test]
async fn an_unreachable_or_silent_server_fails_with_host_and_port() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A server that accepts the connection and never answers: the connect timeout must fire.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let mut rig = Rig::new(&[("DB_CONNECT_TIMEOUT_SECONDS", "1")]).await;
    for (port, want) in [
        (closed, "cannot connect to postgres at"),
        (silent_port, "timed out after 1s connecting to postgres at"),
    ] {
        let mut value = Kind::Postgres.secret("nobody", "Some-pw-1");
        value["port"] = json!(port);
        let arn = rig.secret("db-unreachable", &value).await;
        let r = rig.rotate(&arn).await;
        let err = r.steps.last().unwrap().result.clone().unwrap_err();
        assert_eq!(r.steps.last().unwrap().step, Step::Set);
        assert!(
            err.contains(want) && err.contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert_eq!(creds(&rig.value(&arn, AWSCURRENT).await).1, "Some-pw-1");
    }
}

#[tokio::test]
async fn every_step_twice_is_harmless() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("twice");
        kind.create_user(&user, "Initial-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-twice", &kind.secret(&user, "Initial-pw-1"))
            .await;
        let token = shared::random::version_id();
        stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
            .await
            .unwrap();
        for step in Step::ALL {
            for round in 0..2 {
                let reply = driver::step(
                    &mut rig.function,
                    step,
                    &arn,
                    &token,
                    Duration::from_secs(30),
                )
                .await;
                assert!(reply.is_ok(), "{step} round {round}: {reply:?}");
            }
        }
        let (_, pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        kind.login(&user, &pw).await.unwrap();
        assert!(kind.login(&user, "Initial-pw-1").await.is_err());
        let labels = rig.store.describe(&arn).await.unwrap().labels;
        assert_eq!(
            labels.stages_of(&token),
            Some(&[AWSCURRENT.to_string()][..])
        );
    }
}

#[tokio::test]
async fn a_malformed_secret_names_the_field_and_changes_nothing() {
    let mut rig = Rig::new(&[]).await;
    let cases = [
        (
            json!({"engine": "oracle", "host": "h", "username": "u", "password": "Pw-secret-9"}),
            "field `engine` is `oracle`",
        ),
        (
            json!({"engine": "postgres", "host": "h", "password": "Pw-secret-9"}),
            "field `username` is missing",
        ),
        (
            json!({"engine": "postgres", "host": "h", "username": "u", "password": "Pw-secret-9", "port": "x"}),
            "field `port`",
        ),
    ];
    for (value, want) in cases {
        let arn = rig.secret("db-malformed", &value).await;
        let r = rig.rotate(&arn).await;
        assert_eq!(r.steps.len(), 1);
        let err = r.steps[0].result.clone().unwrap_err();
        assert!(
            err.contains("AWSCURRENT value is invalid") && err.contains(want),
            "{err}"
        );
        assert!(!err.contains("Pw-secret-9"), "{err}");
        assert_eq!(rig.value(&arn, AWSCURRENT).await, value);
    }
}

/// When AWSCURRENT's password does not log in but AWSPREVIOUS's does (a rotation that changed the
/// password and then lost its pending value), setSecret logs in with AWSPREVIOUS.
#[tokio::test]
async fn set_falls_back_on_the_previous_password() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("fallback");
        kind.create_user(&user, "Real-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-fallback", &kind.secret(&user, "Real-pw-1"))
            .await;
        rig.client
            .put_secret_value()
            .secret_id(&arn)
            .secret_string(kind.secret(&user, "Stale-pw-1").to_string())
            .version_stages(AWSCURRENT)
            .send()
            .await
            .unwrap();
        assert_eq!(creds(&rig.value(&arn, AWSPREVIOUS).await).1, "Real-pw-1");
        rig.rotate_ok(&arn).await;
        let (_, pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        kind.login(&user, &pw).await.unwrap();
        assert!(kind.login(&user, "Real-pw-1").await.is_err());
    }
}
