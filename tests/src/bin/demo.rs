//! The README's demo: rotate a real PostgreSQL user's password on the local stack with the real
//! `rotate-db-password` binary, then prove the new password logs in over verified TLS and the old
//! one is refused. The stack's PostgreSQL checks passwords (scram-sha-256).

use e2e::db::{Kind, unique_user};
use e2e::driver::{self, Options};
use e2e::runtime_api::Function;
use e2e::stack;
use shared::store::{AWSCURRENT, AWSPENDING, AWSPREVIOUS, AwsStore, SecretStore};
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    let pg = Kind::Postgres;
    let user = unique_user("demo_app");
    let initial = "Demo-initial-password-1";
    pg.create_user(&user, initial).await;
    println!(
        "1. PostgreSQL on 127.0.0.1:{} (scram-sha-256, TLS): created user {user}",
        pg.port()
    );

    let client = stack::client().await;
    let store = AwsStore::new(client.clone());
    let name = stack::unique("demo/orders-db");
    let arn = stack::create_secret(&client, &name, &pg.secret(&user, initial).to_string()).await;
    let before = store.describe(&arn).await.expect("describe");
    println!("2. created secret {name} in the local Secrets Manager (moto); labels:");
    println!("{}", driver::format_labels(&before.labels));

    let binary = e2e::workspace_binary("rotate-db-password");
    let ca = std::env::var("TEST_CA_FILE").expect("TEST_CA_FILE");
    let env = [("DB_CA_BUNDLE_FILE".to_string(), ca)];
    let mut function = Function::start(&binary, &env, false)
        .await
        .expect("start the function");
    let opts = Options {
        resume: false,
        lambda_arn: stack::function_arn("rotate-db-password"),
        step_timeout: Duration::from_secs(30),
    };
    println!(
        "3. rotate-secret: {} through the Lambda Runtime API",
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

    let password = |stage: &'static str| {
        let (store, arn) = (store.clone(), arn.clone());
        async move {
            let v = store
                .get_value(&arn, None, stage)
                .await
                .expect("read value");
            let json: serde_json::Value =
                serde_json::from_str(v.value.expose()).expect("JSON value");
            json["password"].as_str().unwrap_or_default().to_owned()
        }
    };
    let (current, previous) = (password(AWSCURRENT).await, password(AWSPREVIOUS).await);
    let checks = [
        ("all four steps succeeded", rotation.succeeded()),
        (
            "AWSCURRENT is the new version",
            rotation.labels.version_with(AWSCURRENT) == Some(rotation.token.as_str()),
        ),
        (
            "no AWSPENDING is left behind",
            rotation.labels.version_with(AWSPENDING).is_none(),
        ),
        ("AWSPREVIOUS holds the old password", previous == initial),
        (
            "the new password logs in (TLS verify-full)",
            pg.login(&user, &current).await.is_ok(),
        ),
        (
            "the old password is refused",
            pg.login(&user, initial).await.is_err(),
        ),
    ];
    println!("4. checks");
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
