//! `rotate-db-password` end to end: the real binary, driven through the Lambda Runtime API by the
//! local rotate-secret driver, against moto and throwaway PostgreSQL and MariaDB servers that
//! check passwords and speak TLS with a test CA.

use e2e::db::{Kind, unique_user};
use e2e::driver::{self, Options};
use e2e::stack;
use serde_json::{Value, json};
use shared::Step;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretStore};
use std::time::Duration;

const BINARY: &str = "rotate-db-password";
const HOSTILE: &str = "o'brien\"; drop table x; --";

/// The shared rig (`e2e::rig`) with this rotator's environment.
struct Rig(e2e::rig::Rig);

impl std::ops::Deref for Rig {
    type Target = e2e::rig::Rig;
    fn deref(&self) -> &e2e::rig::Rig {
        &self.0
    }
}

impl std::ops::DerefMut for Rig {
    fn deref_mut(&mut self) -> &mut e2e::rig::Rig {
        &mut self.0
    }
}

impl Rig {
    /// The function trusts the test CA unless `env` says otherwise.
    async fn new(env: &[(&str, &str)]) -> Self {
        let vars = e2e::rig::env_with(e2e::db::function_env(), env);
        Self(e2e::rig::Rig::start(BINARY, &vars).await)
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
    let mut resume = false;
    for round in 1..=3 {
        let r = match std::mem::take(&mut resume) {
            // A stopped rotation goes on from where it stopped, as Secrets Manager retries it.
            true => {
                let opts = Options::new(BINARY).resuming();
                let r = rig.rotate_with(&arn, &opts).await;
                assert!(r.succeeded(), "round {round}: {:?}", r.steps);
                r
            }
            false => rig.rotate_ok(&arn).await,
        };
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
            if kind == Kind::MariaDb {
                // No role inheritance between the pair: privileges are only ever copied onto the
                // pending user, so a grant made to the original alone while the clone is current
                // stops the next rotation, naming it, until the clone holds it too.
                let err = fails_at_set(&mut rig, &arn, &cur_pw).await;
                let t2_name = t2.rsplit('.').next().unwrap();
                assert!(
                    err.contains(&format!("does not hold the privileges of `{user}`"))
                        && err.contains("lacks")
                        && err.contains(t2_name),
                    "{err}"
                );
                kind.admin(&[format!("GRANT SELECT ON {t2} TO {}", kind.grantee(&clone))])
                    .await;
                resume = true;
            }
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
        driver::end_rotation(&rig.store, &arn, &token)
            .await
            .unwrap();
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

/// Someone who may only call PutSecretValue stores an AWSCURRENT pointing at their own server:
/// the live password, now AWSPREVIOUS, must never be sent there (a server may ask for it in
/// clear text). Only the writer's own values reach their server.
#[tokio::test]
async fn the_previous_password_never_goes_to_another_server() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("exfil");
        kind.create_user(&user, "Live-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-exfil", &kind.secret(&user, "Live-pw-1"))
            .await;
        let rogue = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut value = kind.secret(&user, "Guess-pw-1");
        value["port"] = json!(rogue.local_addr().unwrap().port());
        put_current(&rig, &arn, &value).await;
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = seen.clone();
        let server = tokio::spawn(async move {
            while let Ok((conn, _)) = rogue.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(conn);
            }
        });
        let err = fails_at_set(&mut rig, &arn, "Guess-pw-1").await;
        server.abort();
        // AWSCURRENT's and AWSPENDING's logins (the writer's own values), nothing more.
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2, "{err}");
        kind.login(&user, "Live-pw-1")
            .await
            .expect("the live password is unchanged");
        rig.assert_no_leak(&["Live-pw-1"]);
    }
}

/// A writer who may only call PutSecretValue stores their own value under the rotation's version
/// (labelled `AWSPENDING` by RotateSecret) before createSecret runs. createSecret keeps it (a
/// retry must), but it lacks createSecret's seal: setSecret refuses it as dead before it logs in
/// anywhere, `AWSPENDING` is removed, the writer's password never logs in, `AWSCURRENT` keeps
/// working and the next rotation succeeds.
#[tokio::test]
async fn a_value_planted_before_create_secret_is_dead() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("planted");
        kind.create_user(&user, "Live-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-planted", &kind.secret(&user, "Live-pw-1"))
            .await;
        let before = rig.value(&arn, AWSCURRENT).await;
        let token = rig.begin_and_run(&arn, &[]).await;
        rig.client
            .put_secret_value()
            .secret_id(&arn)
            .client_request_token(&token)
            .secret_string(kind.secret(&user, "Writer-pw-1").to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
        let timeout = Duration::from_secs(30);
        driver::step(&mut rig.function, Step::Create, &arn, &token, timeout)
            .await
            .unwrap();
        let error = driver::step(&mut rig.function, Step::Set, &arn, &token, timeout)
            .await
            .unwrap_err();
        for part in [
            "field `createsecret_seal` is missing",
            "createSecret of this function did not make this value",
            "AWSPENDING was removed",
        ] {
            assert!(
                error.contains(part),
                "{}: {error} should contain {part}",
                kind.engine()
            );
        }
        let labels = rig.store.describe(&arn).await.unwrap().labels;
        assert_eq!(labels.version_with(AWSPENDING), None);
        assert_eq!(rig.value(&arn, AWSCURRENT).await, before);
        assert!(kind.login(&user, "Writer-pw-1").await.is_err());
        kind.login(&user, "Live-pw-1").await.unwrap();
        rig.rotate_ok(&arn).await;
        let (_, new) = creds(&rig.value(&arn, AWSCURRENT).await);
        kind.login(&user, &new).await.unwrap();
        assert!(kind.login(&user, "Writer-pw-1").await.is_err());
        rig.assert_no_leak(&["Live-pw-1", "Writer-pw-1", new.as_str()]);
    }
}

/// The same writer first replaces `AWSCURRENT` with a value they know (the live password moves to
/// `AWSPREVIOUS`, on which setSecret falls back), then plants a value sealed with it. The DB
/// rotator's seal is keyed by `AWSPREVIOUS` too, which the writer cannot read: still dead, and the
/// live password is the user's until the next rotation replaces it.
#[tokio::test]
async fn a_value_sealed_by_a_writer_of_awscurrent_is_dead() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("resealed");
        kind.create_user(&user, "Live-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-resealed", &kind.secret(&user, "Live-pw-1"))
            .await;
        put_current(&rig, &arn, &kind.secret(&user, "Known-pw-1")).await;
        let token = rig.begin_and_run(&arn, &[]).await;
        let planted = kind.secret(&user, "Writer-pw-1").to_string();
        rig.client
            .put_secret_value()
            .secret_id(&arn)
            .client_request_token(&token)
            .secret_string(stack::sealed(&rig.store, &arn, &token, &planted).await)
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
        let timeout = Duration::from_secs(30);
        let error = driver::step(&mut rig.function, Step::Set, &arn, &token, timeout)
            .await
            .unwrap_err();
        for part in [
            "field `createsecret_seal` does not match",
            "AWSPENDING was removed",
        ] {
            assert!(
                error.contains(part),
                "{}: {error} should contain {part}",
                kind.engine()
            );
        }
        assert!(kind.login(&user, "Writer-pw-1").await.is_err());
        kind.login(&user, "Live-pw-1").await.unwrap();
        rig.rotate_ok(&arn).await;
        let (_, new) = creds(&rig.value(&arn, AWSCURRENT).await);
        kind.login(&user, &new).await.unwrap();
        rig.assert_no_leak(&["Live-pw-1", "Writer-pw-1", new.as_str()]);
    }
}

/// The same writer plants, under the rotation's version, a copy of the `AWSCURRENT` value they
/// wrote: it looks like Secrets Manager's `RotateImmediately=false` probe, which testSecret alone
/// may take unsealed. setSecret (which would fall back on `AWSPREVIOUS`, the live password, to set
/// the writer's) and finishSecret refuse it: the writer's password never logs in.
#[tokio::test]
async fn a_planted_copy_of_a_written_awscurrent_is_never_set_or_promoted() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("probed");
        kind.create_user(&user, "Live-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-probed", &kind.secret(&user, "Live-pw-1"))
            .await;
        let known = kind.secret(&user, "Known-pw-1");
        put_current(&rig, &arn, &known).await;
        let token = rig.begin_and_run(&arn, &[]).await;
        rig.client
            .put_secret_value()
            .secret_id(&arn)
            .client_request_token(&token)
            .secret_string(known.to_string())
            .version_stages(AWSPENDING)
            .send()
            .await
            .unwrap();
        let timeout = Duration::from_secs(30);
        for step in [Step::Set, Step::Finish] {
            let error = driver::step(&mut rig.function, step, &arn, &token, timeout)
                .await
                .unwrap_err();
            assert!(
                error.contains("field `createsecret_seal` is missing"),
                "{}: {step:?}: {error}",
                kind.engine()
            );
        }
        assert!(kind.login(&user, "Known-pw-1").await.is_err());
        kind.login(&user, "Live-pw-1").await.unwrap();
        let labels = rig.store.describe(&arn).await.unwrap().labels;
        assert_ne!(labels.version_with(AWSCURRENT), Some(token.as_str()));
        rig.assert_no_leak(&["Live-pw-1", "Known-pw-1"]);
    }
}

/// An alternating-users secret for `user` with the stack's superuser as master; returns
/// (secret ARN, master ARN).
async fn alternating_secret(rig: &Rig, kind: Kind, user: &str, password: &str) -> (String, String) {
    let (su, sp) = kind.superuser();
    let master = rig.secret("db-master", &kind.secret(&su, &sp)).await;
    let mut value = kind.secret(user, password);
    value["masterarn"] = json!(master);
    (rig.secret("db-alternating", &value).await, master)
}

/// Stores `value` as AWSCURRENT, as someone who may only call PutSecretValue would.
async fn put_current(rig: &Rig, arn: &str, value: &Value) {
    rig.client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value.to_string())
        .version_stages(AWSCURRENT)
        .send()
        .await
        .unwrap();
}

/// The confused deputy: someone who may only write an alternating-users secret stores versions
/// naming the master user (or with a password they do not hold). The master's password and every
/// other role stay untouched: the rotation either rotates only the secret's own clone or refuses.
#[tokio::test]
async fn a_secret_writer_cannot_turn_the_master_on_another_user() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let (su, sp) = kind.superuser();
        let user = unique_user("victim");
        let bystander = unique_user("bystander");
        kind.create_user(&user, "App-pw-1").await;
        kind.create_user(&bystander, "Bystander-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let with = |u: &str, p: &str, master: &str| {
            let mut v = kind.secret(u, p);
            v["masterarn"] = json!(master);
            v
        };

        // 1. First the master's name, then the secret's own working credentials: the next
        // rotation used to toggle "back" to the master user. Now it rotates the clone only.
        let (arn, master) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
        put_current(&rig, &arn, &with(&su, "Attacker-pw-1", &master)).await;
        put_current(&rig, &arn, &with(&user, "App-pw-1", &master)).await;
        rig.rotate_ok(&arn).await;
        let (cur_user, cur_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        assert_eq!(cur_user, format!("{user}_clone"), "{}", kind.engine());
        kind.login(&cur_user, &cur_pw).await.unwrap();

        // 2. The master user itself as the current user, or as the partner of the current user:
        // refused before any database login.
        for (u, who) in [(su.clone(), "current"), (format!("{su}_clone"), "pending")] {
            let (arn, master) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
            put_current(&rig, &arn, &with(&u, "Attacker-pw-1", &master)).await;
            let r = rig.rotate(&arn).await;
            let err = r.steps.last().unwrap().result.clone().unwrap_err();
            assert_eq!(r.steps.last().unwrap().step, Step::Set, "{err}");
            assert!(
                err.contains(&format!("the {who} user")) && err.contains("is the master user"),
                "{}: {err}",
                kind.engine()
            );
            assert!(err.contains("field `username`"), "{err}");
        }

        // 3. The secret's user with a password the writer does not hold: the master is never
        // used, because the current credentials are proven first.
        let (arn, master) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
        put_current(&rig, &arn, &with(&user, "Wrong-pw-1", &master)).await;
        let r = rig.rotate(&arn).await;
        let err = r.steps.last().unwrap().result.clone().unwrap_err();
        assert!(
            err.contains(
                "the AWSCURRENT credentials do not log in, so the master secret is not used"
            ),
            "{}: {err}",
            kind.engine()
        );
        assert_eq!(creds(&rig.value(&arn, AWSCURRENT).await).1, "Wrong-pw-1");

        kind.login(&su, &sp)
            .await
            .expect("the master password is unchanged");
        kind.login(&bystander, "Bystander-pw-1")
            .await
            .expect("a bystander's password is unchanged");
        kind.login(&user, "App-pw-1")
            .await
            .expect("the original user's password is unchanged");
        let clone_of_master = match kind {
            Kind::Postgres => {
                kind.admin_query(&format!(
                    "SELECT rolname::text FROM pg_roles WHERE rolname = '{su}_clone'"
                ))
                .await
            }
            Kind::MariaDb => {
                kind.admin_query(&format!(
                    "SELECT User FROM mysql.user WHERE User = '{su}_clone'"
                ))
                .await
            }
        };
        assert!(clone_of_master.is_empty(), "{clone_of_master:?}");
        rig.assert_no_leak(&["App-pw-1", "Bystander-pw-1", &sp, &cur_pw]);
    }
}

/// Runs one step of the rotation `token` of `arn`.
async fn run_step(rig: &mut Rig, step: Step, arn: &str, token: &str) -> Result<(), String> {
    driver::step(&mut rig.function, step, arn, token, Duration::from_secs(30)).await
}

/// A crash between creating the clone and granting it privileges (simulated by creating the clone
/// with the pending password and nothing else) must not promote a clone without privileges:
/// setSecret always re-syncs them. And when they differ anyway at testSecret (revoked in between),
/// the pending user is refused, naming the difference, and AWSCURRENT stays.
#[tokio::test]
async fn a_clone_without_the_original_privileges_is_never_promoted() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("drift");
        let table = kind.table(&unique_user("t"));
        kind.create_user(&user, "App-pw-1").await;
        kind.admin(&[
            format!("CREATE TABLE {table} (id int)"),
            format!("GRANT SELECT ON {table} TO {}", kind.grantee(&user)),
        ])
        .await;
        let mut rig = Rig::new(&[]).await;
        for revoke_between_set_and_test in [false, true] {
            let (arn, _) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
            let token = shared::random::version_id();
            stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
                .await
                .unwrap();
            run_step(&mut rig, Step::Create, &arn, &token)
                .await
                .unwrap();
            let (clone, pw) = creds(&rig.value(&arn, AWSPENDING).await);
            assert_eq!(clone, format!("{user}_clone"));
            // The clone as a crash could leave it: the pending password, no privileges (on
            // PostgreSQL the role is created in the original role in one statement, so a crash
            // leaves it a member without its attributes or settings).
            let bare = match kind {
                Kind::Postgres => format!(
                    "CREATE ROLE {} LOGIN PASSWORD '{pw}' IN ROLE {}",
                    e2e::db::pg_ident(&clone),
                    e2e::db::pg_ident(&user)
                ),
                Kind::MariaDb => {
                    format!("CREATE USER {} IDENTIFIED BY '{pw}'", kind.grantee(&clone))
                }
            };
            let drop = match kind {
                Kind::Postgres => format!("DROP ROLE {}", e2e::db::pg_ident(&clone)),
                Kind::MariaDb => format!("DROP USER {}", kind.grantee(&clone)),
            };
            kind.admin(&[bare]).await;
            run_step(&mut rig, Step::Set, &arn, &token).await.unwrap();
            if revoke_between_set_and_test {
                let revoke = match kind {
                    Kind::Postgres => format!(
                        "REVOKE {} FROM {}",
                        e2e::db::pg_ident(&user),
                        e2e::db::pg_ident(&clone)
                    ),
                    Kind::MariaDb => {
                        format!("REVOKE SELECT ON {table} FROM {}", kind.grantee(&clone))
                    }
                };
                kind.admin(&[revoke]).await;
                for step in [Step::Test, Step::Finish] {
                    let err = run_step(&mut rig, step, &arn, &token).await.unwrap_err();
                    let want = match kind {
                        Kind::Postgres => format!("`{clone}` is not a member of `{user}`"),
                        Kind::MariaDb => format!("`{clone}` lacks `GRANT SELECT ON"),
                    };
                    assert!(
                        err.contains("does not have the privileges of the current user")
                            && err.contains(&want),
                        "{step}: {err}"
                    );
                    assert!(!err.contains(&pw), "{err}");
                }
                let (cur_user, cur_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
                assert_eq!(
                    (cur_user.as_str(), cur_pw.as_str()),
                    (user.as_str(), "App-pw-1")
                );
            } else {
                run_step(&mut rig, Step::Test, &arn, &token).await.unwrap();
                run_step(&mut rig, Step::Finish, &arn, &token)
                    .await
                    .unwrap();
                let (cur_user, cur_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
                assert_eq!(cur_user, clone);
                assert!(
                    kind.can_select(&cur_user, &cur_pw, &table).await,
                    "{}: the promoted clone lacks the original's grant",
                    kind.engine()
                );
            }
            kind.admin(&[drop]).await;
            rig.assert_no_leak(&["App-pw-1", &pw]);
        }
    }
}

/// MariaDB: `REQUIRE SSL`, a role and the default role of the original reach the clone.
#[tokio::test]
async fn mariadb_clone_gets_require_roles_and_default_role() {
    let kind = Kind::MariaDb;
    let user = unique_user("req");
    let role = unique_user("reader");
    let table = kind.table(&unique_user("t"));
    kind.create_user(&user, "App-pw-1").await;
    kind.admin(&[
        format!("CREATE TABLE {table} (id int)"),
        format!("CREATE ROLE {role}"),
        format!("GRANT SELECT ON {table} TO {role}"),
        format!("GRANT {role} TO {}", kind.grantee(&user)),
        format!("SET DEFAULT ROLE {role} FOR {}", kind.grantee(&user)),
        format!("ALTER USER {} REQUIRE SSL", kind.grantee(&user)),
    ])
    .await;
    let mut rig = Rig::new(&[]).await;
    let (arn, _) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
    rig.rotate_ok(&arn).await;
    let (clone, pw) = creds(&rig.value(&arn, AWSCURRENT).await);
    assert_eq!(clone, format!("{user}_clone"));
    assert!(
        kind.can_select(&clone, &pw, &table).await,
        "the default role did not follow"
    );
    let require = kind
        .admin_query(&format!(
            "SELECT CAST(ssl_type AS CHAR) FROM mysql.user WHERE User = '{clone}'"
        ))
        .await;
    assert_eq!(require, ["ANY"], "REQUIRE SSL did not follow");
}

/// The RDS instance `rotation-test` in moto, with an RDS-managed master secret, listening on the
/// throwaway PostgreSQL's port; `TEST_RDS_HOST` (its endpoint) resolves to loopback (stack.sh).
async fn rds_instance(rds: &aws_sdk_rds::Client) -> aws_sdk_rds::types::DbInstance {
    let id = "rotation-test";
    if let Ok(out) = rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        return out.db_instances()[0].clone();
    }
    rds.create_db_instance()
        .db_instance_identifier(id)
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin")
        .manage_master_user_password(true)
        .port(i32::from(Kind::Postgres.port()))
        .send()
        .await
        .unwrap()
        .db_instance()
        .unwrap()
        .clone()
}

/// An RDS-managed master secret holds only `username` and `password`: the function finds the
/// database from the secret's `aws:rds:primaryDBInstanceArn` / `aws:rds:primaryDBClusterArn` tag
/// and DescribeDBInstances / DescribeDBClusters, as AWS's templates do.
#[tokio::test]
async fn an_rds_managed_master_secret_finds_its_database() {
    let kind = Kind::Postgres;
    let rds_host = std::env::var("TEST_RDS_HOST").expect("TEST_RDS_HOST: run scripts/test");
    let sdk = shared::config::load().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let instance = rds_instance(&rds).await;
    assert_eq!(
        instance.endpoint().unwrap().address(),
        Some(rds_host.as_str())
    );
    let master = instance.master_user_secret().unwrap().secret_arn().unwrap();
    let mut rig = Rig::new(&[]).await;
    let managed = rig.value(master, AWSCURRENT).await;
    assert_eq!(
        managed.as_object().unwrap().len(),
        2,
        "{:?}",
        managed.as_object().map(|m| m.keys().collect::<Vec<_>>())
    );
    let (mu, mp) = creds(&managed);
    // What RDS does: the managed credentials log in, with CREATEROLE like an RDS master.
    kind.admin(&[format!(
        "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{mu}') THEN \
         CREATE ROLE {} LOGIN CREATEROLE PASSWORD '{}'; END IF; END$$",
        e2e::db::pg_ident(&mu),
        mp.replace('\'', "''")
    )])
    .await;

    let user = unique_user("rdsapp");
    kind.create_user(&user, "App-pw-1").await;
    let mut value = kind.secret(&user, "App-pw-1");
    value["engine"] = json!("aurora-postgresql");
    value["host"] = json!(rds_host);
    value["ssl"] = json!("true");
    value["masterarn"] = json!(master);
    let arn = rig.secret("db-rds-managed", &value).await;
    for round in 1..=2 {
        rig.rotate_ok(&arn).await;
        let (cur_user, cur_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        let want = if round == 1 {
            format!("{user}_clone")
        } else {
            user.clone()
        };
        assert_eq!(cur_user, want);
        kind.login(&cur_user, &cur_pw).await.unwrap();
    }
    kind.login(&mu, &mp).await.expect("the master is untouched");

    // A cluster: its endpoint comes from DescribeDBClusters; this secret's host is elsewhere, so
    // the rotation refuses and names the endpoint it found.
    let cluster = rds
        .create_db_cluster()
        .db_cluster_identifier(stack::unique("rotation-cluster"))
        .engine("aurora-postgresql")
        .master_username("admin")
        .manage_master_user_password(true)
        .port(i32::from(kind.port()))
        .send()
        .await
        .unwrap()
        .db_cluster()
        .unwrap()
        .clone();
    let endpoint = cluster.endpoint().unwrap().to_owned();
    let mut value = kind.secret(&user, "App-pw-1");
    value["masterarn"] = json!(cluster.master_user_secret().unwrap().secret_arn().unwrap());
    let arn = rig.secret("db-rds-cluster", &value).await;
    let err = rig
        .rotate(&arn)
        .await
        .steps
        .last()
        .unwrap()
        .result
        .clone()
        .unwrap_err();
    assert!(
        err.contains(&format!(
            "field `host`/`port` is {endpoint}:{}",
            kind.port()
        )) && err.contains("master secret"),
        "{err}"
    );

    // A master secret of that shape that RDS did not make has no tag: a clear refusal.
    let plain = rig
        .secret(
            "db-untagged-master",
            &json!({"username": mu, "password": mp}),
        )
        .await;
    let mut value = kind.secret(&user, "App-pw-1");
    value["masterarn"] = json!(plain);
    let arn = rig.secret("db-untagged", &value).await;
    let err = rig
        .rotate(&arn)
        .await
        .steps
        .last()
        .unwrap()
        .result
        .clone()
        .unwrap_err();
    assert!(
        err.contains("field `host` is missing") && err.contains("aws:rds:primaryDBInstanceArn"),
        "{err}"
    );
    rig.assert_no_leak(&["App-pw-1", &mp]);
}

/// Alternating users: a consumer still connected as the previous user when the next rotation
/// gives that user a new password is reported (a warning naming the user and the
/// `PreviousCredentialInUse` metric); the rotation goes on.
#[tokio::test]
async fn a_previous_user_still_connected_is_reported() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("inuse");
        kind.create_user(&user, "App-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let (arn, _) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
        rig.rotate_ok(&arn).await;
        // A consumer that never refreshed: still connected as the previous user.
        let mut stale = kind.connect(&user, "App-pw-1").await.unwrap();
        stale.run("SELECT 1").await.unwrap();
        assert!(
            !rig.function
                .output()
                .iter()
                .any(|l| l.contains("PreviousCredentialInUse"))
        );
        rig.rotate_ok(&arn).await;
        let out = rig.function.output();
        let warning = out
            .iter()
            .find(|l| l.contains("the previous credential was used after it stopped being current"))
            .unwrap_or_else(|| panic!("{}: no warning:\n{}", kind.engine(), out.join("\n")));
        assert!(
            warning.contains(&user) && warning.contains("1 open sessions"),
            "{warning}"
        );
        assert!(
            out.iter()
                .any(|l| l.contains("\"PreviousCredentialInUse\":1"))
        );
        drop(stale);
    }
}

/// The database owner plants objects named like the catalog's in a schema of their own and puts
/// it first in their database's `search_path`. The master never logs into that database, and every
/// session pins `search_path`, so none of it runs with the master's power (#19.1).
#[tokio::test]
async fn the_master_never_runs_what_the_database_owner_planted() {
    let kind = Kind::Postgres;
    let user = unique_user("owner");
    let db = unique_user("appdb");
    kind.create_user(&user, "App-pw-1").await;
    kind.admin(&[format!(
        "CREATE DATABASE {} OWNER {}",
        e2e::db::pg_ident(&db),
        e2e::db::pg_ident(&user)
    )])
    .await;
    // As the owner, in their own database: every catalog name the function used unqualified.
    let planted = [
        "CREATE SCHEMA evil".to_string(),
        "CREATE TABLE evil.ran (who text)".into(),
        "GRANT INSERT ON evil.ran TO PUBLIC".into(),
        "GRANT USAGE ON SCHEMA evil TO PUBLIC".into(),
        format!(
            "CREATE FUNCTION evil.pwn() RETURNS int LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO evil.ran VALUES (current_user); \
             IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN \
             EXECUTE 'ALTER ROLE {} SUPERUSER'; END IF; RETURN 0; END $$",
            e2e::db::pg_ident(&user)
        ),
        "CREATE FUNCTION evil.pg_backend_pid() RETURNS int LANGUAGE sql AS 'SELECT evil.pwn()'"
            .into(),
        "CREATE VIEW evil.pg_stat_activity AS SELECT s.*, evil.pwn() AS x FROM pg_catalog.pg_stat_activity s"
            .into(),
        "CREATE VIEW evil.pg_roles AS SELECT r.*, evil.pwn() AS x FROM pg_catalog.pg_roles r".into(),
        "CREATE VIEW evil.pg_auth_members AS SELECT m.*, evil.pwn() AS x FROM pg_catalog.pg_auth_members m"
            .into(),
        format!(
            "ALTER DATABASE {} SET search_path = evil, pg_catalog",
            e2e::db::pg_ident(&db)
        ),
    ];
    {
        use sqlx::Connection;
        let ca = std::fs::read(std::env::var("TEST_CA_FILE").unwrap()).unwrap();
        let o = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(kind.port())
            .username(&user)
            .password("App-pw-1")
            .database(&db)
            .ssl_mode(sqlx::postgres::PgSslMode::VerifyFull)
            .ssl_root_cert_from_pem(ca);
        let mut owner = sqlx::postgres::PgConnection::connect_with(&o)
            .await
            .unwrap();
        for statement in &planted {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&mut owner)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
    let mut rig = Rig::new(&[]).await;
    let (su, sp) = kind.superuser();
    let master = rig.secret("db-master", &kind.secret(&su, &sp)).await;
    let mut value = kind.secret(&user, "App-pw-1");
    value["dbname"] = json!(db);
    value["masterarn"] = json!(master);
    let arn = rig.secret("db-owner", &value).await;
    // Both directions of the pair: the clone is made, then the original is current again.
    rig.rotate_ok(&arn).await;
    rig.rotate_ok(&arn).await;
    let superuser = kind
        .admin_query(&format!(
            "SELECT rolsuper::text FROM pg_roles WHERE rolname = '{user}'"
        ))
        .await;
    assert_eq!(superuser, ["false"], "the owner became a superuser");
    let ran = kind.admin_query_in(&db, "SELECT who FROM evil.ran").await;
    let (_, pw) = creds(&rig.value(&arn, AWSCURRENT).await);
    assert!(
        ran.is_empty(),
        "planted code ran as {ran:?} (the function's users are {user} and {user}_clone)"
    );
    rig.assert_no_leak(&[&sp, &pw]);
}

/// `masterarn` names another application's secret that the function may read (here, a
/// `CREATEROLE` user's): it is not in `DB_MASTER_SECRET_ARNS` nor RDS's own master secret, so it
/// is refused before any login, and nothing changes (#19.2).
#[tokio::test]
async fn a_master_secret_must_be_allowed_by_the_function() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let admin = unique_user("otherapp");
        let user = unique_user("writer");
        kind.create_user(&user, "App-pw-1").await;
        kind.create_user(&admin, "Other-pw-1").await;
        kind.admin(&[match kind {
            Kind::Postgres => format!("ALTER ROLE {} CREATEROLE", kind.grantee(&admin)),
            Kind::MariaDb => format!(
                "GRANT ALL ON *.* TO {} WITH GRANT OPTION",
                kind.grantee(&admin)
            ),
        }])
        .await;
        let mut rig = Rig::new(&[]).await;
        // Another application's secret, rotated by the same function.
        let other = rig
            .secret("db-otherapp", &kind.secret(&admin, "Other-pw-1"))
            .await;
        let mut value = kind.secret(&user, "App-pw-1");
        value["masterarn"] = json!(other);
        let arn = rig.secret("db-writer", &value).await;
        let err = fails_at_set(&mut rig, &arn, "App-pw-1").await;
        assert!(
            err.contains("field `masterarn`")
                && err.contains(&other)
                && err.contains("DB_MASTER_SECRET_ARNS"),
            "{}: {err}",
            kind.engine()
        );
        assert!(
            !kind.user_exists(&format!("{user}_clone")).await,
            "{}: the clone was made",
            kind.engine()
        );
        kind.login(&user, "App-pw-1").await.unwrap();
        rig.assert_no_leak(&["App-pw-1", "Other-pw-1"]);
    }
}

/// A leftover (or self-made) `victim_clone` whose password the writer knows: the writer stores it
/// as AWSCURRENT of a secret with an allowed master. The victim's password is never reset, and the
/// leftover never gets the victim's privileges (#19.3).
#[tokio::test]
async fn privileges_flow_only_to_the_pending_user() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let victim = unique_user("victim");
        let leftover = format!("{victim}_clone");
        let table = kind.table(&unique_user("t"));
        kind.create_user(&victim, "Victim-pw-1").await;
        kind.create_user(&leftover, "Known-pw-1").await;
        kind.admin(&[
            format!("CREATE TABLE {table} (id int)"),
            format!("GRANT SELECT ON {table} TO {}", kind.grantee(&victim)),
        ])
        .await;
        let mut rig = Rig::new(&[]).await;
        let (arn, _) = alternating_secret(&rig, kind, &leftover, "Known-pw-1").await;
        let err = fails_at_set(&mut rig, &arn, "Known-pw-1").await;
        assert!(
            err.contains(&format!(
                "the current user `{leftover}` does not hold the privileges of `{victim}`"
            )),
            "{}: {err}",
            kind.engine()
        );
        kind.login(&victim, "Victim-pw-1")
            .await
            .expect("the victim's password is unchanged");
        assert!(
            !kind.can_select(&leftover, "Known-pw-1", &table).await,
            "{}: the leftover got the victim's privileges",
            kind.engine()
        );
        rig.assert_no_leak(&["Victim-pw-1", "Known-pw-1"]);
    }
}

/// A writer stores AWSCURRENT with the same user, a junk password and `"ssl": false`, while
/// AWSPREVIOUS (TLS) holds the live password: the live password is not replaced by one that
/// would then travel in plain text (#19.4a).
#[tokio::test]
async fn a_password_is_never_replaced_by_one_sent_in_plain_text() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("downgrade");
        kind.create_user(&user, "Live-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let arn = rig
            .secret("db-downgrade", &kind.secret(&user, "Live-pw-1"))
            .await;
        let mut value = kind.secret(&user, "Junk-pw-1");
        value["ssl"] = json!(false);
        put_current(&rig, &arn, &value).await;
        let err = fails_at_set(&mut rig, &arn, "Junk-pw-1").await;
        assert!(
            err.contains("field `ssl` is false") && err.contains("AWSPREVIOUS"),
            "{}: {err}",
            kind.engine()
        );
        kind.login(&user, "Live-pw-1")
            .await
            .expect("the live password is unchanged");
        rig.assert_no_leak(&["Live-pw-1"]);
    }
}

/// The reverse: AWSCURRENT asks for TLS, AWSPREVIOUS (the live password) says `"ssl": false`. The
/// previous password is sent with AWSCURRENT's setting, TLS, never in plain text: a relay in
/// front of PostgreSQL sees every connection of the rotation start with an SSLRequest (#19.4b).
#[tokio::test]
async fn the_previous_password_travels_with_the_current_transport() {
    let kind = Kind::Postgres;
    let relay = e2e::sockets::Relay::start(kind.port()).await;
    let user = unique_user("upgrade");
    kind.create_user(&user, "Live-pw-1").await;
    let mut rig = Rig::new(&[]).await;
    let at_relay = |password: &str, ssl: bool| {
        let mut v = kind.secret(&user, password);
        v["port"] = json!(relay.port);
        v["ssl"] = json!(ssl);
        v
    };
    let arn = rig
        .secret("db-upgrade", &at_relay("Live-pw-1", false))
        .await;
    put_current(&rig, &arn, &at_relay("Stale-pw-1", true)).await;
    rig.rotate_ok(&arn).await;
    let first = relay.first_bytes();
    assert!(!first.is_empty());
    // PostgreSQL's SSLRequest: length 8, code 80877103.
    let ssl_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    for bytes in &first {
        assert!(
            bytes.starts_with(&ssl_request),
            "a connection started in plain text: {bytes:?}"
        );
    }
    let (_, pw) = creds(&rig.value(&arn, AWSCURRENT).await);
    kind.login(&user, &pw).await.unwrap();
}

/// A MySQL/MariaDB user with two accounts (`'mu'@'127.0.0.1'`, `'mu'@'localhost'`): a single-user
/// rotation could change only the account it logs in as, so clients of the other would break.
/// When the user can see its accounts, setSecret refuses before any change, naming them (#19.5).
#[tokio::test]
async fn a_user_with_several_accounts_is_refused_before_any_change() {
    let kind = Kind::MariaDb;
    let user = unique_user("mu");
    let accounts = ["127.0.0.1", "localhost"].map(|h| format!("'{user}'@'{h}'"));
    let mut statements: Vec<String> = accounts
        .iter()
        .map(|a| format!("CREATE USER {a} IDENTIFIED BY 'Mu-pw-1'"))
        .collect();
    statements.extend(
        accounts
            .iter()
            .map(|a| format!("GRANT SELECT ON mysql.user TO {a}")),
    );
    kind.admin(&statements).await;
    let mut rig = Rig::new(&[]).await;
    let arn = rig.secret("db-mu", &kind.secret(&user, "Mu-pw-1")).await;
    let err = fails_at_set(&mut rig, &arn, "Mu-pw-1").await;
    assert!(
        err.contains(&format!("user `{user}` has 2 accounts"))
            && err.contains("`127.0.0.1`")
            && err.contains("`localhost`"),
        "{err}"
    );
    kind.login(&user, "Mu-pw-1")
        .await
        .expect("the password is unchanged");
    let hashes = kind
        .admin_query(&format!(
            "SELECT DISTINCT CAST(authentication_string AS CHAR) FROM mysql.user WHERE User = '{user}'"
        ))
        .await;
    assert_eq!(hashes.len(), 1, "the accounts' passwords diverged");
    rig.assert_no_leak(&["Mu-pw-1"]);
}

/// A TCP relay to 127.0.0.1:`upstream` that holds every chunk the server sends for `delay`.
async fn slow_relay(upstream: u16, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// A server that answers every packet 1.5 s late: an alternating setSecret, which runs a login
/// and several statements, ends with our own error naming what was slow, before its invocation
/// deadline (8 s here), not by Lambda's kill (#19.6).
#[tokio::test]
async fn a_slow_server_ends_the_step_with_our_error_before_the_deadline() {
    let kind = Kind::Postgres;
    let port = slow_relay(kind.port(), Duration::from_millis(1500)).await;
    let user = unique_user("slow");
    kind.create_user(&user, "App-pw-1").await;
    let mut rig = Rig::new(&[]).await;
    let at_slow = |u: &str, p: &str| {
        let mut v = kind.secret(u, p);
        v["port"] = json!(port);
        v["ssl"] = json!(false);
        v
    };
    let (su, sp) = kind.superuser();
    let master = rig.secret("db-master", &at_slow(&su, &sp)).await;
    let mut value = at_slow(&user, "App-pw-1");
    value["masterarn"] = json!(master);
    let arn = rig.secret("db-slow", &value).await;
    let opts = Options {
        step_timeout: Duration::from_secs(8),
        ..Options::new(BINARY)
    };
    let r = rig.rotate_with(&arn, &opts).await;
    let set = r
        .steps
        .iter()
        .find(|s| s.step == Step::Set)
        .unwrap_or_else(|| panic!("{:?}", r.steps));
    let err = set.result.clone().unwrap_err();
    assert!(err.contains("time budget"), "{err}");
    assert!(set.millis < 8000.0, "{} ms", set.millis);
    rig.assert_no_leak(&["App-pw-1", &sp]);
}

/// One owner for an alternating pair (#22.2): the clone's sessions act as the original, so a
/// table the clone creates belongs to the original and stays readable when the original is
/// current again. testSecret refuses a clone that does not act as the original.
#[tokio::test]
async fn objects_either_user_creates_have_one_owner() {
    let kind = Kind::Postgres;
    let user = unique_user("owner1");
    kind.create_user(&user, "App-pw-1").await;
    kind.admin(&[format!(
        "GRANT CREATE ON SCHEMA public TO {}",
        kind.grantee(&user)
    )])
    .await;
    let mut rig = Rig::new(&[]).await;
    let (arn, _) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
    rig.rotate_ok(&arn).await;
    let (clone, clone_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
    assert_eq!(clone, format!("{user}_clone"));
    let table = unique_user("made_by_clone");
    let mut conn = kind.connect(&clone, &clone_pw).await.unwrap();
    conn.run(&format!("CREATE TABLE {table} (id int)"))
        .await
        .unwrap();
    drop(conn);
    let owner = kind
        .admin_query(&format!(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = '{table}'"
        ))
        .await;
    assert_eq!(
        owner,
        [user.as_str()],
        "the clone's table has another owner"
    );
    rig.rotate_ok(&arn).await;
    let (current, pw) = creds(&rig.value(&arn, AWSCURRENT).await);
    assert_eq!(current, user);
    assert!(kind.can_select(&user, &pw, &table).await);

    // A clone whose sessions stopped acting as the original between setSecret and testSecret
    // is not promoted.
    let token = shared::random::version_id();
    stack::begin_rotation(&rig.client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    for step in [Step::Create, Step::Set] {
        run_step(&mut rig, step, &arn, &token).await.unwrap();
    }
    kind.admin(&[format!("ALTER ROLE {} RESET role", kind.grantee(&clone))])
        .await;
    let err = run_step(&mut rig, Step::Test, &arn, &token)
        .await
        .unwrap_err();
    assert!(
        err.contains(&format!(
            "`{clone}`'s sessions act as itself instead of `{user}`"
        )),
        "{err}"
    );
    assert_eq!(creds(&rig.value(&arn, AWSCURRENT).await).0, user);
}

/// Dual passwords on MariaDB (#22.1): one user, every account of it (`'%'` and `'127.0.0.1'`)
/// accepts the current password beside the pending one, set as hashes by the master; a consumer
/// that read `AWSCURRENT` before the rotation keeps working until the next rotation retires its
/// password (`RETIRE_PREVIOUS=next-rotation`), and is refused after.
#[tokio::test]
async fn mariadb_dual_passwords_keep_a_cached_consumer_working_until_retirement() {
    let kind = Kind::MariaDb;
    let user = unique_user("dual");
    let hosts = ["%", "127.0.0.1"];
    kind.admin(&hosts.map(|h| format!("CREATE USER '{user}'@'{h}' IDENTIFIED BY 'Initial-pw-1'")))
        .await;
    let mut rig = Rig::new(&[]).await;
    let (su, sp) = kind.superuser();
    let master = rig.secret("db-master", &kind.secret(&su, &sp)).await;
    let mut value = kind.secret(&user, "Initial-pw-1");
    value["masterarn"] = json!(master);
    value["dual_password"] = json!(true);
    let arn = rig.secret("db-dual", &value).await;
    // The hash each account holds for a password, by host.
    let holds = |password: String| {
        let user = user.clone();
        async move {
            let hash = kind
                .admin_query(&format!("SELECT CAST(PASSWORD('{password}') AS CHAR)"))
                .await
                .remove(0);
            kind.admin_query(&format!(
                "SELECT Host FROM mysql.global_priv WHERE User = '{user}' AND Priv LIKE '%{hash}%' ORDER BY Host"
            ))
            .await
        }
    };
    let consumer = "Initial-pw-1".to_string();
    let mut seen = vec![consumer.clone()];
    rig.rotate_ok(&arn).await;
    let (name, first) = creds(&rig.value(&arn, AWSCURRENT).await);
    assert_eq!(name, user, "dual passwords keep the user");
    kind.login(&user, &first).await.unwrap();
    kind.login(&user, &consumer)
        .await
        .expect("the consumer's cached password still works after the rotation");
    for password in [&first, &consumer] {
        assert_eq!(holds(password.clone()).await, ["%", "127.0.0.1"]);
    }
    seen.push(first.clone());

    rig.rotate_ok(&arn).await;
    let (_, second) = creds(&rig.value(&arn, AWSCURRENT).await);
    assert!(
        kind.login(&user, &consumer).await.is_err(),
        "the retired password still logs in"
    );
    assert!(holds(consumer.clone()).await.is_empty());
    kind.login(&user, &first)
        .await
        .expect("the previous password works until the next rotation");
    kind.login(&user, &second).await.unwrap();
    seen.push(second);
    let seen: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .chain([sp.as_str()])
        .collect();
    rig.assert_no_leak(&seen);
}

/// The mirror of `privileges_flow_only_to_the_pending_user`: the writer's own user is `mallory`,
/// and an unrelated `mallory_clone` exists with a password and privileges of its own. The
/// rotation never resets its password nor hands it to the writer (review of #19).
#[tokio::test]
async fn an_unrelated_clone_is_never_taken_over() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let writer = unique_user("mallory");
        let other = format!("{writer}_clone");
        let table = kind.table(&unique_user("t"));
        kind.create_user(&writer, "Writer-pw-1").await;
        kind.create_user(&other, "Other-owner-pw-1").await;
        kind.admin(&[
            format!("CREATE TABLE {table} (id int)"),
            format!("GRANT SELECT ON {table} TO {}", kind.grantee(&other)),
        ])
        .await;
        let mut rig = Rig::new(&[]).await;
        let (arn, _) = alternating_secret(&rig, kind, &writer, "Writer-pw-1").await;
        let err = fails_at_set(&mut rig, &arn, "Writer-pw-1").await;
        assert!(
            err.contains(&format!(
                "a user `{other}` exists that is not the clone of `{writer}`"
            )),
            "{}: {err}",
            kind.engine()
        );
        kind.login(&other, "Other-owner-pw-1")
            .await
            .expect("the other user's password is unchanged");
        assert!(!kind.can_select(&writer, "Writer-pw-1", &table).await);
        rig.assert_no_leak(&["Writer-pw-1", "Other-owner-pw-1"]);
    }
}

/// A hostile PostgreSQL server (single-user mode: the writer picks the host) answers the start-up
/// with a message declaring 2 GiB and streams it: the session stops reading at 8 MiB with an error
/// that says so, and the function's memory stays small (review of #19: it reached 2.1 GB).
#[tokio::test]
async fn a_server_sending_an_endless_message_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut startup = [0u8; 1024];
                let _ = conn.read(&mut startup).await;
                let mut head = vec![b'R'];
                head.extend_from_slice(&0x7FFF_FFF0u32.to_be_bytes());
                if conn.write_all(&head).await.is_err() {
                    return;
                }
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..2048 {
                    if conn.write_all(&zeros).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut rig = Rig::new(&[]).await;
    let mut value = Kind::Postgres.secret(&unique_user("endless"), "Some-pw-1");
    value["port"] = json!(port);
    value["ssl"] = json!(false);
    let arn = rig.secret("db-endless", &value).await;
    let err = fails_at_set(&mut rig, &arn, "Some-pw-1").await;
    server.abort();
    assert!(err.contains("more than 8192 KiB on one session"), "{err}");
    let peak = rig.function.peak_rss_kib().unwrap();
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

/// Back-to-back rotations (#23.3 for the DB rotator): with the default minimum age, the second
/// of two rotations seconds apart does not reset the alternating user that was current until
/// seconds earlier, nor remove a dual password's previous password; it fails saying when it can
/// run, and every credential a consumer may hold keeps working.
#[tokio::test]
async fn back_to_back_rotations_keep_the_previous_credential_for_its_minimum_age() {
    let mut rig = Rig::new(&[("RETIRE_PREVIOUS_MIN_AGE_SECONDS", "")]).await;
    for (kind, dual) in [(Kind::Postgres, false), (Kind::MariaDb, true)] {
        let user = unique_user("b2b");
        kind.create_user(&user, "Initial-pw-1").await;
        let (su, sp) = kind.superuser();
        let master = rig.secret("db-master", &kind.secret(&su, &sp)).await;
        let mut value = kind.secret(&user, "Initial-pw-1");
        value["masterarn"] = json!(master);
        if dual {
            value["dual_password"] = json!(true);
        }
        let arn = rig.secret("db-b2b", &value).await;
        rig.rotate_ok(&arn).await;
        let (cur_user, cur_pw) = creds(&rig.value(&arn, AWSCURRENT).await);
        let r = rig.rotate(&arn).await;
        let err = r
            .steps
            .iter()
            .find_map(|s| s.result.clone().err())
            .unwrap_or_else(|| panic!("{}: the second rotation ran: {:?}", kind.engine(), r.steps));
        assert!(
            err.contains("RETIRE_PREVIOUS_MIN_AGE_SECONDS=7200") && err.contains("can run from"),
            "{}: {err}",
            kind.engine()
        );
        kind.login(&user, "Initial-pw-1")
            .await
            .unwrap_or_else(|e| panic!("{}: the previous credential: {e}", kind.engine()));
        kind.login(&cur_user, &cur_pw).await.unwrap();
    }
}

/// #23.2 for alternating users: Secrets Manager's configuration test for `RotateImmediately=false`
/// (testSecret alone on a copy of `AWSCURRENT` labelled `AWSPENDING`) passes, before and after a
/// first rotation, and changes nothing: both users keep their passwords, and the label stays for
/// the service to remove.
#[tokio::test]
async fn a_configuration_test_probe_of_alternating_users_passes_and_changes_nothing() {
    for kind in [Kind::Postgres, Kind::MariaDb] {
        let user = unique_user("probe");
        kind.create_user(&user, "App-pw-1").await;
        let mut rig = Rig::new(&[]).await;
        let (arn, _) = alternating_secret(&rig, kind, &user, "App-pw-1").await;
        for rotated in [false, true] {
            if rotated {
                rig.rotate_ok(&arn).await;
            }
            let current = creds(&rig.value(&arn, AWSCURRENT).await);
            let probe = stack::begin_probe(&rig.client, &arn, &stack::function_arn(BINARY)).await;
            driver::step(
                &mut rig.function,
                Step::Test,
                &arn,
                &probe,
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|e| panic!("{}, rotated {rotated}: {e}", kind.engine()));
            kind.login(&current.0, &current.1).await.unwrap();
            if rotated {
                kind.login(&user, "App-pw-1")
                    .await
                    .expect("the previous user is untouched");
            }
            let labels = rig.store.describe(&arn).await.unwrap().labels;
            assert!(labels.has(&probe, AWSPENDING), "{labels:?}");
            assert_eq!(rig.value(&arn, AWSCURRENT).await["username"], current.0);
            // What the service does after its test.
            rig.store
                .move_stage(&arn, AWSPENDING, None, Some(&probe))
                .await
                .unwrap();
        }
    }
}

/// #23.4 for RDS: an RDS that stalls with the connection open, while the function looks up an
/// RDS-managed master secret's database, ends the step with our error naming the call, before
/// the invocation's deadline.
#[tokio::test]
async fn a_stalled_rds_ends_the_step_naming_the_call() {
    let kind = Kind::Postgres;
    let rds_host = std::env::var("TEST_RDS_HOST").expect("TEST_RDS_HOST: run scripts/test");
    let sdk = shared::config::load().await;
    let instance = rds_instance(&aws_sdk_rds::Client::new(&sdk)).await;
    let master = instance.master_user_secret().unwrap().secret_arn().unwrap();
    let (url, stall) = e2e::proxy::start_stalling(stack::endpoint()).await;
    let mut rig = Rig::new(&[("AWS_ENDPOINT_URL_RDS", &url)]).await;
    let user = unique_user("rdsstall");
    kind.create_user(&user, "App-pw-1").await;
    let mut value = kind.secret(&user, "App-pw-1");
    value["host"] = json!(rds_host);
    value["masterarn"] = json!(master);
    let arn = rig.secret("db-rds-stalled", &value).await;
    let token = rig.begin_and_run(&arn, &[Step::Create]).await;
    stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let deadline = Duration::from_secs(8);
    let started = std::time::Instant::now();
    let err = driver::step(&mut rig.function, Step::Set, &arn, &token, deadline)
        .await
        .unwrap_err();
    assert!(
        err.contains("time budget ran out")
            && err.ends_with("while waiting for RDS DescribeDBInstances"),
        "{err}"
    );
    assert_eq!(
        rig.function.error_types().last().map(String::as_str),
        Some("StepOutOfTime")
    );
    assert!(started.elapsed() < deadline - Duration::from_secs(2));
    kind.login(&user, "App-pw-1")
        .await
        .expect("nothing changed");
}

/// #23.2 for a single user and dual passwords: the configuration test's probe (a copy of
/// `AWSCURRENT`) passes testSecret, and the password does not change.
#[tokio::test]
async fn a_configuration_test_probe_of_one_user_passes_and_changes_nothing() {
    for (kind, dual) in [(Kind::Postgres, false), (Kind::MariaDb, true)] {
        let user = unique_user("probe1");
        kind.create_user(&user, "App-pw-1").await;
        let rig = Rig::new(&[]).await;
        let mut value = kind.secret(&user, "App-pw-1");
        if dual {
            let (su, sp) = kind.superuser();
            value["masterarn"] = json!(rig.secret("db-master", &kind.secret(&su, &sp)).await);
            value["dual_password"] = json!(true);
        }
        let arn = rig.secret("db-probe-one", &value).await;
        let mut rig = rig;
        let probe = stack::begin_probe(&rig.client, &arn, &stack::function_arn(BINARY)).await;
        driver::step(
            &mut rig.function,
            Step::Test,
            &arn,
            &probe,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", kind.engine()));
        kind.login(&user, "App-pw-1").await.unwrap();
        let labels = rig.store.describe(&arn).await.unwrap().labels;
        assert!(labels.has(&probe, AWSPENDING), "{labels:?}");
    }
}
