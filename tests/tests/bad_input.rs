//! Bad input, every rotator: each case goes through the real binary and must be refused with a
//! message naming the field or condition, and leave the labels, `AWSCURRENT` and the service as
//! they were. The test prints how many cases were refused cleanly.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use e2e::db::{Kind, unique_user};
use e2e::driver;
use e2e::github::{GitHub, Installation};
use e2e::iam::{self, Admin, PATH};
use e2e::redis::Server;
use e2e::runtime_api::{Function, Reply};
use e2e::stack;
use serde_json::{Value, json};
use shared::Step;
use shared::store::{AWSCURRENT, AwsStore, SecretStore};
use std::time::Duration;

/// What a case stores, and how it is invoked.
enum Input {
    /// A secret with this value, rotation begun, then createSecret.
    Value(Value),
    /// A secret stored as SecretBinary (not UTF-8 text).
    Binary(Vec<u8>),
    /// A raw event for a good secret whose rotation was begun; `{arn}` is filled in.
    Event(Value),
    /// A good secret whose rotation was begun, then disabled before createSecret.
    RotationDisabled,
    /// A good secret deleted (scheduled) between createSecret and setSecret.
    DeletedMidRotation,
}

struct Rotator {
    binary: &'static str,
    client: Client,
    env: Vec<(String, String)>,
    /// A secret value that rotates fine, and a check that the service still accepts it.
    good: Value,
    /// The GitHub stand-in, for the GitHub rotator.
    github: Option<GitHub>,
}

impl Rotator {
    async fn random() -> Self {
        Self {
            binary: "rotate-random-password",
            client: stack::client().await,
            env: vec![],
            good: json!({"password": "Good-pw-1"}),
            github: None,
        }
    }

    async fn db() -> Self {
        let user = unique_user("bad");
        Kind::Postgres.create_user(&user, "Good-pw-1").await;
        Self {
            binary: "rotate-db-password",
            client: stack::client().await,
            env: e2e::db::function_env(),
            good: Kind::Postgres.secret(&user, "Good-pw-1"),
            github: None,
        }
    }

    async fn iam() -> Self {
        let admin = Admin::connect().await;
        let (key, secret) = admin.rotator(&unique_user("bad_rotator"), true).await;
        let user = unique_user("bad");
        let (k, s) = admin.user(&user, PATH).await;
        Self {
            binary: "rotate-iam-access-key",
            client: admin.sm,
            env: vec![
                ("AWS_ENDPOINT_URL".into(), iam::url()),
                ("AWS_ACCESS_KEY_ID".into(), key),
                ("AWS_SECRET_ACCESS_KEY".into(), secret),
            ],
            good: json!({"UserName": user, "AccessKeyId": k, "SecretAccessKey": s}),
            github: None,
        }
    }

    async fn github() -> Self {
        let read = |var: &str| std::fs::read_to_string(std::env::var(var).unwrap()).unwrap();
        let installation = Installation {
            app_id: 42,
            repos: vec!["acme/api".into()],
            permissions: [("administration".to_string(), json!("write"))]
                .into_iter()
                .collect(),
            suspended: false,
        };
        let gh = GitHub::start(42, &read("TEST_GITHUB_APP_PUB"), vec![(7, installation)]).await;
        let client = stack::client().await;
        let key = stack::create_secret(
            &client,
            &stack::unique("bad-gh-key"),
            &read("TEST_GITHUB_APP_KEY"),
        )
        .await;
        let token = gh.seed_token(7);
        Self {
            binary: "rotate-github-token",
            client,
            env: vec![("GITHUB_API_URL".into(), gh.url.clone())],
            good: json!({"kind": "app-installation-token", "app_id": 42, "installation_id": 7,
                         "private_key_secret_arn": key, "token": token}),
            github: Some(gh),
        }
    }

    async fn redis() -> Self {
        let client = stack::client().await;
        let user = unique_user("bad");
        Server::Redis.create_user(&user, "Good-pw-1").await;
        let admin = Server::Redis.admin_secret(&client).await;
        Self {
            binary: "rotate-redis-password",
            client,
            env: e2e::redis::function_env(),
            good: Server::Redis.secret(&user, "Good-pw-1", &admin),
            github: None,
        }
    }

    /// The service still accepts the good (current) credential.
    async fn service_unchanged(&self) -> bool {
        match self.binary {
            "rotate-db-password" => Kind::Postgres
                .login(self.good["username"].as_str().unwrap(), "Good-pw-1")
                .await
                .is_ok(),
            "rotate-iam-access-key" => {
                let (k, s) = (
                    self.good["AccessKeyId"].as_str().unwrap(),
                    self.good["SecretAccessKey"].as_str().unwrap(),
                );
                iam::caller(k, s).await.is_ok()
            }
            "rotate-redis-password" => {
                // The password still logs in, and is still the user's only one.
                let user = self.good["username"].as_str().unwrap();
                let logs_in = Server::Redis.login(user, "Good-pw-1").await.is_ok();
                logs_in && Server::Redis.acl(user).await.1.len() == 1
            }
            "rotate-github-token" => {
                let gh = self.github.as_ref().unwrap();
                gh.state
                    .lock()
                    .unwrap()
                    .token_is_live(self.good["token"].as_str().unwrap())
            }
            _ => true,
        }
    }
}

async fn invoke(f: &mut Function, step: Step, arn: &str, token: &str) -> Result<(), String> {
    driver::step(f, step, arn, token, Duration::from_secs(30)).await
}

/// Runs one case; returns the error message after checking nothing changed, and the pre-flight's
/// report for the same misconfiguration (events are not the pre-flight's: `None`).
async fn run(r: &Rotator, f: &mut Function, input: Input) -> (String, Option<Value>) {
    let store = AwsStore::new(r.client.clone());
    let name = stack::unique("bad-input");
    let arn = match &input {
        Input::Binary(bytes) => {
            let out = r
                .client
                .create_secret()
                .name(&name)
                .secret_binary(Blob::new(bytes.clone()))
                .send()
                .await
                .unwrap();
            out.arn().unwrap().to_owned()
        }
        Input::Value(v) => stack::create_secret(&r.client, &name, &v.to_string()).await,
        _ => stack::create_secret(&r.client, &name, &r.good.to_string()).await,
    };
    if r.github.is_some() {
        // The tags that pin what the good value may mint (`rotators/github-token/src/pin.rs`).
        let pin = e2e::github::pin_tags(&r.good, "administration=write");
        e2e::github::tag(&r.client, &arn, &pin).await;
    }
    let token = shared::random::version_id();
    stack::begin_rotation(&r.client, &arn, &token, &stack::function_arn(r.binary))
        .await
        .unwrap();
    let before = store.describe(&arn).await.unwrap().labels;
    let current_before = store
        .get_value(&arn, None, AWSCURRENT)
        .await
        .ok()
        .map(|v| v.value);
    let mut report = None;
    let err = match input {
        Input::Value(_) | Input::Binary(_) => {
            report = Some(driver::preflight(f, &arn).await.unwrap());
            let err = invoke(f, Step::Create, &arn, &token).await.unwrap_err();
            // Besides the field, the message names the step and the secret.
            let names = format!("createSecret failed for secret {arn}");
            assert!(err.contains(&names), "{err} should contain {names}");
            err
        }
        Input::Event(event) => {
            let text = event.to_string().replace("{arn}", &arn);
            let event: Value = serde_json::from_str(&text).unwrap();
            match f.invoke(&event, Duration::from_secs(30)).await.unwrap() {
                Reply::Error(e) => e,
                Reply::Response(v) => panic!("{event}: accepted with {v}"),
            }
        }
        Input::RotationDisabled => {
            r.client
                .cancel_rotate_secret()
                .secret_id(&arn)
                .send()
                .await
                .unwrap();
            report = Some(driver::preflight(f, &arn).await.unwrap());
            invoke(f, Step::Create, &arn, &token).await.unwrap_err()
        }
        Input::DeletedMidRotation => {
            invoke(f, Step::Create, &arn, &token).await.unwrap();
            let before = store.describe(&arn).await.unwrap().labels;
            r.client
                .delete_secret()
                .secret_id(&arn)
                .recovery_window_in_days(7)
                .send()
                .await
                .unwrap();
            let err = invoke(f, Step::Set, &arn, &token).await.unwrap_err();
            let report = driver::preflight(f, &arn).await.unwrap();
            r.client
                .restore_secret()
                .secret_id(&arn)
                .send()
                .await
                .unwrap();
            assert_eq!(store.describe(&arn).await.unwrap().labels, before, "{err}");
            assert!(r.service_unchanged().await, "{err}");
            return (err, Some(report));
        }
    };
    assert_eq!(
        store.describe(&arn).await.unwrap().labels,
        before,
        "labels changed after: {err}"
    );
    let current_after = store
        .get_value(&arn, None, AWSCURRENT)
        .await
        .ok()
        .map(|v| v.value);
    assert_eq!(
        current_after, current_before,
        "AWSCURRENT changed after: {err}"
    );
    assert!(
        r.service_unchanged().await,
        "the service changed after: {err}"
    );
    (err, report)
}

async fn matrix(r: Rotator, cases: Vec<(Input, &str)>) -> usize {
    let mut f = Function::start(&e2e::workspace_binary(r.binary), &r.env, false)
        .await
        .unwrap();
    let common = vec![
        (
            Input::Event(
                json!({"Step": "rotateSecret", "SecretId": "{arn}", "ClientRequestToken": "t"}),
            ),
            "field `Step` is `rotateSecret`",
        ),
        (
            Input::Event(
                json!({"Step": "createSecret", "SecretId": "", "ClientRequestToken": "t"}),
            ),
            "field `SecretId` is empty",
        ),
        (
            Input::Event(json!({"Step": "createSecret", "SecretId": "{arn}"})),
            "field `ClientRequestToken` is missing",
        ),
        (
            Input::Event(
                json!({"Step": "createSecret", "SecretId": "{arn}", "ClientRequestToken": "t\u{1b}[31m"}),
            ),
            "non-printable",
        ),
        (
            Input::Event(
                json!({"Step": "createSecret", "SecretId": "{arn}", "ClientRequestToken": 42}),
            ),
            "must be a string",
        ),
        (Input::Event(json!(["createSecret"])), "not a JSON object"),
        (
            Input::Event(
                json!({"Step": "setSecret", "SecretId": "{arn}", "ClientRequestToken": "not-a-version"}),
            ),
            "not a version of this secret",
        ),
        (Input::RotationDisabled, "rotation is not enabled"),
        (Input::DeletedMidRotation, "marked for deletion"),
        (Input::Value(json!("just a string")), "not an object"),
        (
            Input::Binary(vec![0xff, 0xfe, 0x00, 0x80]),
            "has no SecretString",
        ),
    ];
    let (mut refused, mut reported) = (0, 0);
    for (input, want) in common.into_iter().chain(cases) {
        let (err, report) = run(&r, &mut f, input).await;
        // The pre-flight reports the same misconfiguration, with the same message, as not ok.
        if let Some(report) = report {
            let text = driver::format_report(&report);
            let found = report["checks"].as_array().unwrap().iter().any(|c| {
                c["status"] != "ok" && c["message"].as_str().unwrap_or_default().contains(want)
            });
            assert!(
                found,
                "{}: the pre-flight does not report `{want}`:\n{text}",
                r.binary
            );
            assert!(
                !text.contains("Good-pw-1") && !text.contains("sk-hidden"),
                "{text}"
            );
            reported += 1;
        }
        assert!(
            err.contains(want),
            "{}: {err} should contain {want}",
            r.binary
        );
        assert!(
            !err.contains("Good-pw-1") && !err.contains("sk-hidden"),
            "{err}"
        );
        refused += 1;
    }
    f.stop().await;
    println!(
        "{}: {refused} bad inputs refused cleanly, {reported} of them reported by the pre-flight",
        r.binary
    );
    refused
}

#[tokio::test]
async fn random_password_refuses_bad_input() {
    // Its createSecret replaces `password` whatever it held, so only the shared cases apply.
    let n = matrix(Rotator::random().await, vec![]).await;
    assert!(n >= 11);
}

#[tokio::test]
async fn db_password_refuses_bad_input() {
    let base = Kind::Postgres.secret("u", "Good-pw-1");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        Input::Value(b)
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        Input::Value(b)
    };
    let cases = vec![
        (
            with("engine", json!("oracle")),
            "field `engine` is `oracle`",
        ),
        (with("engine", json!(5)), "field `engine` must be a string"),
        (with("port", json!("five")), "field `port`"),
        (with("port", json!(0)), "field `port`"),
        (
            with("ssl", json!("yes")),
            "field `ssl` must be true or false",
        ),
        (
            with("username", json!("u".repeat(64))),
            "longer than 63 bytes",
        ),
        (with("username", json!("u\u{7}")), "control character"),
        (with("host", json!("h\n")), "control character"),
        (
            with("host", json!("x".repeat(30_000))),
            "field `host` is longer than 253",
        ),
        (without("password"), "field `password` is missing"),
        (without("host"), "field `host` is missing"),
        (without("username"), "field `username` is missing"),
        (with("password", json!("")), "field `password` is empty"),
    ];
    let n = matrix(Rotator::db().await, cases).await;
    assert!(n >= 20);
}

#[tokio::test]
async fn iam_access_key_refuses_bad_input() {
    let cases = vec![
        (
            Input::Value(json!({"AccessKeyId": "AKIAX", "SecretAccessKey": "sk-hidden"})),
            "field `UserName` is missing",
        ),
        (
            Input::Value(
                json!({"UserName": "u", "AccessKeyId": 5, "SecretAccessKey": "sk-hidden"}),
            ),
            "field `AccessKeyId` must be a string",
        ),
        (
            Input::Value(json!({"UserName": "u", "AccessKeyId": "AKIAX"})),
            "field `SecretAccessKey` is missing",
        ),
        (
            Input::Value(
                json!({"UserName": "u\u{0}", "AccessKeyId": "AKIAX", "SecretAccessKey": "sk-hidden"}),
            ),
            "field `UserName` is empty or has control characters",
        ),
        (
            Input::Value(
                json!({"UserName": "", "AccessKeyId": "AKIAX", "SecretAccessKey": "sk-hidden"}),
            ),
            "field `UserName` is empty",
        ),
        (
            Input::Value(
                json!({"UserName": unique_user("nobody"), "AccessKeyId": "AKIAX", "SecretAccessKey": "sk-hidden"}),
            ),
            "NoSuchEntity",
        ),
    ];
    let n = matrix(Rotator::iam().await, cases).await;
    assert!(n >= 17);
}

#[tokio::test]
async fn github_token_refuses_bad_input() {
    let r = Rotator::github().await;
    let with = |k: &str, v: Value| {
        let mut b = r.good.clone();
        b[k] = v;
        Input::Value(b)
    };
    let without = |k: &str| {
        let mut b = r.good.clone();
        b.as_object_mut().unwrap().remove(k);
        Input::Value(b)
    };
    let cases = vec![
        (
            with("kind", json!("personal-access-token")),
            "field `kind` is `personal-access-token`",
        ),
        (without("kind"), "field `kind` is missing"),
        (
            with("app_id", json!("forty-two")),
            "field `app_id` must be a positive integer",
        ),
        (
            with("installation_id", json!(-7)),
            "field `installation_id` must be a positive integer",
        ),
        (
            without("private_key_secret_arn"),
            "field `private_key_secret_arn` is missing",
        ),
        (
            with("repositories", json!(["ok", "o'brien\"; --"])),
            "field `repositories` must be a non-empty list",
        ),
        (
            with("repositories", json!(["répo"])),
            "field `repositories` must be a non-empty list",
        ),
        (
            with("permissions", json!({"contents": "admin"})),
            "field `permissions`",
        ),
        (with("token", json!(7)), "field `token` must be a string"),
        (
            with("kind", json!("deploy-key")),
            "field `owner` is missing",
        ),
    ];
    let n = matrix(r, cases).await;
    assert!(n >= 21);
}

#[tokio::test]
async fn redis_password_refuses_bad_input() {
    let r = Rotator::redis().await;
    let with = |k: &str, v: Value| {
        let mut b = r.good.clone();
        b[k] = v;
        Input::Value(b)
    };
    let without = |k: &str| {
        let mut b = r.good.clone();
        b.as_object_mut().unwrap().remove(k);
        Input::Value(b)
    };
    let cases = vec![
        (with("port", json!(0)), "field `port` must be a port number"),
        (with("port", json!("six")), "field `port`"),
        (
            with("ssl", json!("yes")),
            "field `ssl` must be true or false",
        ),
        (
            with("username", json!("app user")),
            "field `username` contains a space",
        ),
        (without("username"), "field `username` is missing"),
        (with("host", json!("")), "field `host` is empty"),
        (with("host", json!(5)), "field `host` must be a string"),
        (without("password"), "field `password` is missing"),
        (
            with("password", json!(7)),
            "field `password` must be a string",
        ),
        (
            with("password", json!("Good-pw-1\r\nFLUSHALL")),
            "field `password` contains a control character",
        ),
        (without("masterarn"), "field `masterarn` is missing"),
    ];
    let n = matrix(r, cases).await;
    assert!(n >= 22);
}
