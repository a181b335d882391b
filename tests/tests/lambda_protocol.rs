//! The protocol as Lambda and Secrets Manager see it (#23), through the real
//! `rotate-random-password` binary under the Runtime API stand-in.

use e2e::driver::{self, Options};
use e2e::runtime_api::{Function, Reply};
use e2e::{proxy, stack};
use serde_json::json;
use shared::Step;
use shared::store::{AWSCURRENT, AWSPENDING, AwsStore, SecretStore};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const BINARY: &str = "rotate-random-password";

async fn start(env: &[(&str, &str)]) -> Function {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Function::start(&e2e::workspace_binary(BINARY), &env, false)
        .await
        .unwrap()
}

/// A secret with a rotation begun (the `AWSPENDING` placeholder), and its token.
async fn begun(name: &str) -> (aws_sdk_secretsmanager::Client, String, String) {
    let client = stack::client().await;
    let arn = stack::create_secret(&client, &stack::unique(name), r#"{"password":"p0"}"#).await;
    let token = shared::random::version_id();
    stack::begin_rotation(&client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    (client, arn, token)
}

/// #23.4: one budget per step. Secrets Manager stalls with the connection open; the SDK's own
/// per-attempt timeout (10 s) is longer than the whole invocation, so without the step's budget
/// Lambda would kill the function with no error of ours.
#[tokio::test]
async fn a_stalled_secrets_manager_ends_the_step_with_our_error_before_the_deadline() {
    let (_client, arn, token) = begun("stalled").await;
    let (url, stall) = proxy::start_stalling(stack::endpoint()).await;
    let mut f = start(&[("AWS_ENDPOINT_URL", &url)]).await;
    stall.store(true, Ordering::SeqCst);
    let deadline = Duration::from_secs(8);
    let started = Instant::now();
    let err = driver::step(&mut f, Step::Create, &arn, &token, deadline)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(f.error_types(), ["StepOutOfTime"]);
    f.stop().await;
    assert!(
        err.starts_with(&format!("createSecret failed for secret {arn}"))
            && err.contains("time budget ran out")
            && err.ends_with("while waiting for Secrets Manager DescribeSecret"),
        "{err}"
    );
    assert!(took < deadline - Duration::from_secs(2), "{took:?}");
}

/// #23.4: the pre-flight runs under the same budget as a step.
#[tokio::test]
async fn a_stalled_preflight_ends_with_our_error_before_the_deadline() {
    let (_client, arn, _) = begun("stalled-preflight").await;
    let (url, stall) = proxy::start_stalling(stack::endpoint()).await;
    let mut f = start(&[("AWS_ENDPOINT_URL", &url)]).await;
    stall.store(true, Ordering::SeqCst);
    let deadline = Duration::from_secs(8);
    let started = Instant::now();
    let event = json!({"Step": "preflight", "SecretId": arn});
    let reply = f.invoke(&event, deadline).await.unwrap();
    let took = started.elapsed();
    let Reply::Error(err) = reply else {
        panic!("{reply:?}");
    };
    assert!(
        err.starts_with(&format!("preflight of {arn}"))
            && err.contains("time budget ran out")
            && err.contains("while waiting for Secrets Manager"),
        "{err}"
    );
    assert_eq!(f.error_types(), ["StepOutOfTime"]);
    assert!(took < deadline - Duration::from_secs(2), "{took:?}");
    f.stop().await;
}

/// #23.6: Lambda's `errorType` says what ended the step (one kind per `shared::Error` variant, and
/// `InvalidEvent`), so Secrets Manager's failure message, the console and an alarm can tell them
/// apart; the message reads as before.
#[tokio::test]
async fn the_error_type_says_what_happened() {
    let (client, arn, token) = begun("error-types").await;
    let garbled = stack::create_secret(&client, &stack::unique("garbled"), "not json").await;
    let garbled_token = shared::random::version_id();
    stack::begin_rotation(
        &client,
        &garbled,
        &garbled_token,
        &stack::function_arn(BINARY),
    )
    .await
    .unwrap();
    let step = |secret: &str, token: &str| json!({"Step": "createSecret", "SecretId": secret, "ClientRequestToken": token});
    let missing = format!("{arn}-missing");
    let cases = [
        (
            json!({"Step": "rotateSecret", "SecretId": arn, "ClientRequestToken": token}),
            "InvalidEvent",
            "invalid rotation event: field `Step`".to_owned(),
        ),
        (
            step(&arn, "not-a-version-of-it"),
            "StageGateRefused",
            format!(
                "createSecret failed for secret {arn} (version not-a-version-of-it): the version is not a version of this secret"
            ),
        ),
        (
            step(&missing, &token),
            "SecretsManagerFailed",
            format!(
                "createSecret failed for secret {missing} (version {token}): Secrets Manager not found: DescribeSecret: ResourceNotFoundException"
            ),
        ),
        (
            step(&garbled, &garbled_token),
            "InvalidSecretValue",
            format!(
                "createSecret failed for secret {garbled} (version {garbled_token}): the AWSCURRENT value is invalid"
            ),
        ),
    ];
    let mut f = start(&[]).await;
    for (event, error_type, message) in &cases {
        let reply = f.invoke(event, Duration::from_secs(30)).await.unwrap();
        let Reply::Error(got) = reply else {
            panic!("{event}: {reply:?}");
        };
        assert!(got.starts_with(message.as_str()), "{event}: {got}");
        assert_eq!(
            f.error_types().last().map(String::as_str),
            Some(*error_type),
            "{got}"
        );
    }
    f.stop().await;
}

/// #23.1: finishSecret makes one label call: `AWSCURRENT` moves, and `AWSPENDING` stays on the new
/// current version for Secrets Manager to remove (the driver does that, as the service does). A
/// whole rotation makes one `UpdateSecretVersionStage`, and the next rotation starts.
#[tokio::test]
async fn finish_secret_makes_one_label_call() {
    let (client, arn, token) = begun("one-label-call").await;
    let (url, counts) = proxy::start(stack::endpoint()).await;
    let mut f = start(&[("AWS_ENDPOINT_URL", &url)]).await;
    let timeout = Duration::from_secs(30);
    for step in [Step::Create, Step::Set, Step::Test] {
        driver::step(&mut f, step, &arn, &token, timeout)
            .await
            .unwrap();
    }
    counts.take();
    driver::step(&mut f, Step::Finish, &arn, &token, timeout)
        .await
        .unwrap();
    let finish = counts.take();
    assert_eq!(
        finish.get("SecretsManager:UpdateSecretVersionStage"),
        Some(&1),
        "{finish:?}"
    );
    let store = AwsStore::new(client.clone());
    let labels = store.describe(&arn).await.unwrap().labels;
    let mut stages = labels.stages_of(&token).unwrap().to_vec();
    stages.sort();
    assert_eq!(stages, [AWSCURRENT, AWSPENDING]);
    assert_eq!(labels.rotation_in_progress(), None);

    let r = driver::rotate(&client, &mut f, &arn, &Options::new(BINARY))
        .await
        .unwrap();
    assert!(r.succeeded(), "{:?}", r.steps);
    assert_eq!(
        r.labels.version_with(AWSPENDING),
        None,
        "the driver ends the rotation"
    );
    let sm: BTreeMap<String, u64> = counts
        .take()
        .into_iter()
        .filter(|(op, _)| op.starts_with("SecretsManager:"))
        .collect();
    let want: BTreeMap<String, u64> = [
        ("SecretsManager:DescribeSecret", 4),
        // createSecret: AWSPENDING (none yet) and AWSCURRENT; setSecret, testSecret and
        // finishSecret: AWSPENDING, and AWSCURRENT for the probe check and createSecret's seal.
        ("SecretsManager:GetSecretValue", 8),
        ("SecretsManager:PutSecretValue", 1),
        ("SecretsManager:UpdateSecretVersionStage", 1),
    ]
    .into_iter()
    .map(|(op, n)| (op.to_owned(), n))
    .collect();
    assert_eq!(
        sm, want,
        "the function's Secrets Manager calls for one rotation"
    );
    f.stop().await;
}

/// #23.2: the configuration test Secrets Manager runs for `RotateImmediately=false` (testSecret
/// alone on a copy of `AWSCURRENT` labelled `AWSPENDING`) passes and changes nothing.
#[tokio::test]
async fn a_configuration_test_probe_passes_and_changes_nothing() {
    let client = stack::client().await;
    let value = r#"{"password":"Probe-password-p0","user":"u"}"#;
    let arn = stack::create_secret(&client, &stack::unique("probe"), value).await;
    let probe = stack::begin_probe(&client, &arn, &stack::function_arn(BINARY)).await;
    let mut f = start(&[]).await;
    driver::step(&mut f, Step::Test, &arn, &probe, Duration::from_secs(30))
        .await
        .unwrap();
    f.stop().await;
    let store = AwsStore::new(client);
    let current = store.get_value(&arn, None, AWSCURRENT).await.unwrap();
    assert_eq!(current.value.expose(), value);
    let labels = store.describe(&arn).await.unwrap().labels;
    assert!(labels.has(&probe, AWSPENDING), "{labels:?}");
}
