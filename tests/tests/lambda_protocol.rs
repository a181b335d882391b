//! The protocol as Lambda and Secrets Manager see it (#23), through the real
//! `rotate-random-password` binary under the Runtime API stand-in.

use e2e::runtime_api::Function;
use e2e::{driver, proxy, stack};
use shared::Step;
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
    f.stop().await;
    assert!(
        err.starts_with(&format!("createSecret failed for secret {arn}"))
            && err.contains("time budget ran out")
            && err.ends_with("while waiting for Secrets Manager DescribeSecret"),
        "{err}"
    );
    assert!(took < deadline - Duration::from_secs(2), "{took:?}");
}
