use iam_access_key::{IamAccessKey, OldKeyAction, ROTATOR};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let old_key_action = shared::config::Retire::from_env()
        .and_then(OldKeyAction::from_env)
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = shared::config::load().await;
    let target = IamAccessKey::new(&sdk, old_key_action);
    shared::lambda::serve(ROTATOR, &sdk, target).await
}
