//! The README's demo: a whole rotation on the local stack, with the real rotator binary.
//! Until a target rotator lands, it rotates a generated password (`rotate-random-password`).

use e2e::driver::{self, Options};
use e2e::runtime_api::Function;
use e2e::stack;
use shared::store::{AWSCURRENT, AWSPREVIOUS, AwsStore, SecretStore};
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let name = stack::unique("demo/app-api-secret");
    let arn = stack::create_secret(
        &client,
        &name,
        r#"{"username":"app","password":"initial-password"}"#,
    )
    .await;
    println!("1. created secret {name}");
    let before = store.describe(&arn).await.expect("describe");
    println!(
        "   labels before:\n{}",
        driver::format_labels(&before.labels)
    );

    let binary = e2e::workspace_binary("rotate-random-password");
    let mut function = Function::start(&binary, &[], false)
        .await
        .expect("start the function");
    let opts = Options {
        resume: false,
        lambda_arn: stack::function_arn("rotate-random-password"),
        step_timeout: Duration::from_secs(30),
    };
    println!(
        "2. rotate-secret, running {} through the Lambda Runtime API",
        binary.display()
    );
    let rotation = driver::rotate(&client, &mut function, &arn, &opts)
        .await
        .expect("rotation starts");
    function.stop().await;
    for s in &rotation.steps {
        let outcome = s
            .result
            .as_ref()
            .map(|_| "ok".to_string())
            .unwrap_or_else(|e| format!("FAILED: {e}"));
        println!("   {:<13} {:>6.1} ms  {outcome}", s.step.as_str(), s.millis);
    }
    println!(
        "   labels after:\n{}",
        driver::format_labels(&rotation.labels)
    );

    let value = |stage: &'static str| {
        let store = store.clone();
        let arn = arn.clone();
        async move {
            let v = store
                .get_value(&arn, None, stage)
                .await
                .expect("read value");
            serde_json::from_str::<serde_json::Value>(v.value.expose()).expect("JSON value")
        }
    };
    let (current, previous) = (value(AWSCURRENT).await, value(AWSPREVIOUS).await);
    let checks = [
        ("all four steps succeeded", rotation.succeeded()),
        (
            "AWSCURRENT is the new version",
            rotation.labels.version_with(AWSCURRENT) == Some(rotation.token.as_str()),
        ),
        (
            "no AWSPENDING is left behind",
            rotation.labels.version_with("AWSPENDING").is_none(),
        ),
        (
            "the new password differs from the old one",
            current["password"] != previous["password"],
        ),
        (
            "AWSPREVIOUS holds the old password",
            previous["password"] == "initial-password",
        ),
        ("other fields are kept", current["username"] == "app"),
        (
            "the new password is 32 characters",
            current["password"].as_str().map(str::len) == Some(32),
        ),
    ];
    println!("3. checks");
    let mut ok = true;
    for (what, passed) in checks {
        println!("   [{}] {what}", if passed { "ok" } else { "FAILED" });
        ok &= passed;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
