//! The real `rotate-random-password` binary, run through the Lambda Runtime API by the local
//! rotate-secret driver against moto.

use e2e::driver::{self, Options};
use e2e::runtime_api::{Function, Reply};
use e2e::stack;
use serde_json::json;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsStore, SecretStore};
use std::time::Duration;

const BINARY: &str = "rotate-random-password";

fn opts(resume: bool) -> Options {
    Options {
        resume,
        ..Options::new(BINARY)
    }
}

async fn start(env: &[(&str, &str)]) -> Function {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Function::start(&e2e::workspace_binary(BINARY), &env, false)
        .await
        .unwrap()
}

async fn password(store: &AwsStore, arn: &str, stage: &str) -> String {
    let v = store.get_value(arn, None, stage).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(v.value.expose()).unwrap();
    json["password"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_rotations_in_a_row_through_the_binary() {
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let arn = stack::create_secret(
        &client,
        &stack::unique("bin-twice"),
        r#"{"password":"Initial-password-p0","user":"u"}"#,
    )
    .await;
    let mut f = start(&[("PASSWORD_LENGTH", "20")]).await;
    let mut seen = vec!["Initial-password-p0".to_string()];
    for round in 1..=2 {
        let r = driver::rotate(&client, &mut f, &arn, &opts(false))
            .await
            .unwrap();
        assert!(r.succeeded(), "round {round}: {:?}", r.steps);
        assert_eq!(
            r.labels.stages_of(&r.token),
            Some(&[AWSCURRENT.to_string()][..])
        );
        assert_eq!(r.labels.version_with(AWSPENDING), None);
        let (current, previous) = (
            password(&store, &arn, AWSCURRENT).await,
            password(&store, &arn, AWSPREVIOUS).await,
        );
        assert_eq!(current.len(), 20);
        assert_eq!(&previous, seen.last().unwrap(), "round {round}");
        assert!(!seen.contains(&current));
        seen.push(current);
    }
    let logs = f.output();
    f.stop().await;
    for p in &seen {
        assert!(
            !logs.iter().any(|l| l.contains(p.as_str())),
            "a password reached the function's output"
        );
    }
    let summaries = logs
        .iter()
        .filter(|l| l.contains("\"step finished\""))
        .count();
    assert_eq!(summaries, 8, "one summary line per step");
    assert!(
        logs.iter()
            .filter(|l| l.contains("\"CloudWatchMetrics\""))
            .count()
            >= 8
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("\"secret_id\"") && l.contains("\"step\":\"setSecret\""))
    );
}

#[tokio::test]
async fn a_rotation_in_progress_is_refused_then_resumed() {
    let client = stack::client().await;
    let arn = stack::create_secret(
        &client,
        &stack::unique("bin-resume"),
        r#"{"password":"p0"}"#,
    )
    .await;
    let token = shared::random::version_id();
    stack::begin_rotation(&client, &arn, &token, &stack::function_arn(BINARY))
        .await
        .unwrap();
    let mut f = start(&[]).await;
    let err = driver::rotate(&client, &mut f, &arn, &opts(false))
        .await
        .unwrap_err();
    assert!(
        err.contains("isn't complete") && err.contains(&token),
        "{err}"
    );
    let r = driver::rotate(&client, &mut f, &arn, &opts(true))
        .await
        .unwrap();
    f.stop().await;
    assert!(r.succeeded(), "{:?}", r.steps);
    assert_eq!(r.token, token);
}

#[tokio::test]
async fn a_bad_secret_value_fails_create_and_leaves_current_alone() {
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let arn = stack::create_secret(&client, &stack::unique("bin-bad"), "not json at all").await;
    let before = store.describe(&arn).await.unwrap().labels;
    let mut f = start(&[]).await;
    let r = driver::rotate(&client, &mut f, &arn, &opts(false))
        .await
        .unwrap();
    f.stop().await;
    assert_eq!(r.steps.len(), 1, "stops at the first failing step");
    let err = r.steps[0].result.as_ref().unwrap_err();
    for part in [
        "createSecret failed",
        arn.as_str(),
        r.token.as_str(),
        "AWSCURRENT value is invalid",
        "not valid JSON",
    ] {
        assert!(err.contains(part), "{err} should contain {part}");
    }
    let current = store.get_value(&arn, None, AWSCURRENT).await.unwrap();
    assert_eq!(current.value.expose(), "not json at all");
    assert_eq!(
        r.labels.version_with(AWSCURRENT),
        before.version_with(AWSCURRENT)
    );
}

#[tokio::test]
async fn an_unknown_step_is_refused_with_the_field_named() {
    let mut f = start(&[]).await;
    let event = json!({"Step": "deleteSecret", "SecretId": "s", "ClientRequestToken": "t"});
    let reply = f.invoke(&event, Duration::from_secs(10)).await.unwrap();
    f.stop().await;
    let Reply::Error(message) = reply else {
        panic!("expected an error, got {reply:?}")
    };
    assert!(
        message.contains("field `Step` is `deleteSecret`"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_password_setting_stops_the_function_at_start_up() {
    let mut f = start(&[("PASSWORD_LENGTH", "lots")]).await;
    let event = json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t"});
    let err = f.invoke(&event, Duration::from_secs(10)).await.unwrap_err();
    assert!(err.to_string().contains("exited"), "{err}");
    let logs = f.output().join("\n");
    assert!(
        logs.contains("PASSWORD_LENGTH must be a whole number"),
        "{logs}"
    );
}

// ---- the `rotate-local` command --------------------------------------------------------------

fn rotate_local(
    args: &[&str],
    env: &[(&str, &str)],
    unset: &[&str],
) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rotate-local"));
    cmd.args(args).envs(env.iter().copied());
    for name in unset {
        cmd.env_remove(name);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn rotate_local_help_says_how_to_use_it_and_the_log_level() {
    for flag in ["--help", "-h"] {
        let (status, out, err) = rotate_local(&[flag], &[], &[]);
        assert_eq!(status, Some(0), "{flag}: {err}");
        for part in [
            "usage: rotate-local",
            "--secret-id",
            "--logs",
            "LOG_LEVEL",
            "stack_start",
        ] {
            assert!(out.contains(part), "{flag} should mention {part}:\n{out}");
        }
    }
}

#[test]
fn rotate_local_without_the_stack_says_how_to_start_it() {
    let args = ["--secret-id", "s", "--function", "/bin/true"];
    // A port nothing listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let closed = format!("http://{closed}");
    for (env, unset) in [
        (vec![], vec!["AWS_ENDPOINT_URL"]),
        (vec![("AWS_ENDPOINT_URL", closed.as_str())], vec![]),
    ] {
        let (status, _, err) = rotate_local(&args, &env, &unset);
        assert_eq!(status, Some(2), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.contains("the local stack is not running")
                && err.contains(". scripts/stack.sh && stack_start"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn rotate_local_prints_a_start_up_error_without_logs() {
    let client = stack::client().await;
    let arn = stack::create_secret(
        &client,
        &stack::unique("cli-startup"),
        r#"{"password":"p0"}"#,
    )
    .await;
    let binary = e2e::workspace_binary(BINARY);
    let args = [
        "--secret-id",
        arn.as_str(),
        "--function",
        binary.to_str().unwrap(),
        "--env",
        "PASSWORD_LENGTH=lots",
    ];
    let (status, out, err) = rotate_local(&args, &[], &[]);
    assert_eq!(status, Some(1), "{out}\n{err}");
    assert!(
        err.contains("PASSWORD_LENGTH must be a whole number"),
        "{out}\n{err}"
    );
}
